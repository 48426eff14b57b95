#!/usr/bin/env python3
"""One side of a Noise handshake made by an independent implementation, the PyPI package
noiseprotocol 0.3.1 (module `noise`), for Tests/RelayClientTests/NoiseInteropTests.swift.

Driven over stdin/stdout, one JSON object per line, every line of output flushed at once.

The first line configures the handshake; it is answered with {"ready": "<protocol name>"} (or
{"error": ...}, and the peer exits 1):

    {"pattern": "IKpsk2" | "KK", "initiator": bool, "s": hex, "rs": hex | null,
     "e": hex | null, "psk": hex | null, "prologue": hex}

    s:  this side's static private key (32 bytes)
    rs: the other side's static public key (IKpsk2's initiator, both sides of KK)
    e:  a fixed ephemeral private key; a fresh one when null
    psk: IKpsk2's 32-byte pre-shared key (required there, ignored for KK)

Then one command per line, each answered by exactly one line (every value in an answer is a
string); a command that fails is answered with {"error": "<exception type>: <message>"} and the
peer goes on reading:

    {"write": hex_payload}      -> {"message": hex}      the next handshake message
    {"read": hex_message}       -> {"payload": hex}      the payload of the other side's message
    {"hash": true}              -> {"hash": hex}         the handshake hash (once complete)
    {"keys": true}              -> {"send": hex, "receive": hex}   the split() keys (once complete)
    {"encrypt": hex}            -> {"ciphertext": hex}   a transport message (empty ad, counter nonce)
    {"decrypt": hex}            -> {"plaintext": hex}
    {"aead_seal": {"key": hex, "nonce": hex, "ad": hex, "plaintext": hex}} -> {"ciphertext": hex}
    {"aead_open": {"key": hex, "nonce": hex, "ad": hex, "ciphertext": hex}} -> {"plaintext": hex}

aead_* are plain ChaCha20-Poly1305 (RFC 8439) from `cryptography`, independent of the handshake.
Blank lines are ignored. At the end of input the peer exits 0. Nothing but answers is written to
stdout; tracebacks of unexpected failures go to stderr.
"""

import json
import sys
import warnings

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from noise.connection import Keypair, NoiseConnection

# Bytes: noiseprotocol 0.3.1's from_name encodes a str name but passes the original on, which
# NoiseProtocol then refuses.
PROTOCOLS = {
    "IKpsk2": b"Noise_IKpsk2_25519_ChaChaPoly_SHA256",
    "KK": b"Noise_KK_25519_ChaChaPoly_SHA256",
}

# noiseprotocol warns on stderr when an ephemeral key is fixed; here that is the point.
warnings.filterwarnings("ignore", message="One of ephemeral keypairs is already set")


def unhex(value, what, length=None):
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a hex string")
    data = bytes.fromhex(value)
    if length is not None and len(data) != length:
        raise ValueError(f"{what} must be {length} bytes, not {len(data)}")
    return data


def configure(config):
    pattern = config.get("pattern")
    if pattern not in PROTOCOLS:
        raise ValueError(f"unknown pattern {pattern!r}")
    initiator = config.get("initiator")
    if not isinstance(initiator, bool):
        raise ValueError("initiator must be true or false")
    connection = NoiseConnection.from_name(PROTOCOLS[pattern])
    connection.set_keypair_from_private_bytes(Keypair.STATIC, unhex(config.get("s"), "s", 32))
    if config.get("rs") is not None:
        connection.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, unhex(config["rs"], "rs", 32))
    if config.get("e") is not None:
        connection.set_keypair_from_private_bytes(Keypair.EPHEMERAL, unhex(config["e"], "e", 32))
    if pattern == "IKpsk2":
        if config.get("psk") is None:
            raise ValueError("IKpsk2 needs a psk")
        connection.set_psks(psk=unhex(config["psk"], "psk", 32))
    connection.set_prologue(unhex(config.get("prologue", ""), "prologue"))
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.start_handshake()
    return connection


def finished(connection):
    if not connection.handshake_finished:
        raise RuntimeError("the handshake is not complete")


def aead_arguments(arguments, data_key):
    if not isinstance(arguments, dict):
        raise ValueError("aead arguments must be an object")
    return (
        ChaCha20Poly1305(unhex(arguments.get("key"), "key", 32)),
        unhex(arguments.get("nonce"), "nonce", 12),
        unhex(arguments.get("ad", ""), "ad"),
        unhex(arguments.get(data_key), data_key),
    )


def answer(connection, command):
    if not isinstance(command, dict) or len(command) != 1:
        raise ValueError("a command is an object with one member")
    (name, argument), = command.items()
    if name == "write":
        return {"message": bytes(connection.write_message(unhex(argument, "payload"))).hex()}
    if name == "read":
        return {"payload": bytes(connection.read_message(unhex(argument, "message"))).hex()}
    if name == "hash":
        finished(connection)
        return {"hash": bytes(connection.get_handshake_hash()).hex()}
    if name == "keys":
        finished(connection)
        protocol = connection.noise_protocol
        return {"send": bytes(protocol.cipher_state_encrypt.k).hex(), "receive": bytes(protocol.cipher_state_decrypt.k).hex()}
    if name == "encrypt":
        return {"ciphertext": bytes(connection.encrypt(unhex(argument, "plaintext"))).hex()}
    if name == "decrypt":
        return {"plaintext": bytes(connection.decrypt(unhex(argument, "ciphertext"))).hex()}
    if name == "aead_seal":
        cipher, nonce, ad, plaintext = aead_arguments(argument, "plaintext")
        return {"ciphertext": cipher.encrypt(nonce, plaintext, ad).hex()}
    if name == "aead_open":
        cipher, nonce, ad, ciphertext = aead_arguments(argument, "ciphertext")
        return {"plaintext": cipher.decrypt(nonce, ciphertext, ad).hex()}
    raise ValueError(f"unknown command {name!r}")


def failure(error):
    return {"error": f"{type(error).__name__}: {error}"}


def send(message):
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def next_line():
    """The next non-blank input line, or None at the end of input."""
    while True:
        line = sys.stdin.readline()
        if not line:
            return None
        if line.strip():
            return line


def main():
    line = next_line()
    if line is None:
        return 0
    try:
        config = json.loads(line)
        connection = configure(config)
    except Exception as error:  # noqa: BLE001 - every failure is reported to the driver
        send(failure(error))
        return 1
    send({"ready": PROTOCOLS[config["pattern"]].decode()})
    while (line := next_line()) is not None:
        try:
            reply = answer(connection, json.loads(line))
        except Exception as error:  # noqa: BLE001
            reply = failure(error)
        send(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
