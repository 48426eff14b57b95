// One key and value of a JSON object, as the parser collects them and the writer sorts them.

/// One member of an object being written.
struct ObjectMember {
    var key: String
    var value: JSONValue
}
