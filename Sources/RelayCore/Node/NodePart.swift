// What every part of a node reads from the context it was built with.

import Logging

/// A part of ``Relay`` built with the node's ``NodeContext``: the shorthands every part reads.
protocol NodePart {
    var context: NodeContext { get }
}

extension NodePart {
    var configuration: CoreConfiguration { context.configuration }
    var stats: RelayStats { context.stats }
    var logger: Logger { context.logger }
}
