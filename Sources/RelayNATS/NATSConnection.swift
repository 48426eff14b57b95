import CNats
import COpenSSL
