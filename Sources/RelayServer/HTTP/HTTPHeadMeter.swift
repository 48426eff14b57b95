// Meters a request head's raw bytes before NIO's decoder buffers them, for the head's limits.

import NIOCore

/// Sits in front of the HTTP decoder and tells the connection how many bytes arrive, before the
/// decoder has made a request head of them: the decoder buffers a partial head without limit, so
/// the head's size limit and the header timeout are enforced on the raw bytes.
final class HTTPHeadMeter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private weak var connection: HTTPConnectionHandler?

    init(connection: HTTPConnectionHandler) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        connection?.bytesArriving(buffer)
        context.fireChannelRead(data)
        // After the decoder ran: a head completed in this read has reset the count.
        connection?.bytesArrived()
    }
}
