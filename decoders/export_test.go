package decoders

import "google.golang.org/protobuf/reflect/protoreflect"

// ProtoParseCost is protoParseCost of a message of type md, for the tests
// of package decoders_test.
func ProtoParseCost(b []byte, md protoreflect.MessageDescriptor, limit int) int {
	return protoParseCost(b, protoShapeOf(md), limit)
}

// ProtoParseCoster is ProtoParseCost with md's shape resolved once, as
// the decoder resolves it.
func ProtoParseCoster(md protoreflect.MessageDescriptor) func(b []byte, limit int) int {
	shape := protoShapeOf(md)
	return func(b []byte, limit int) int { return protoParseCost(b, shape, limit) }
}

// ProtoParseBudgets is protoParseBudgets.
const ProtoParseBudgets = protoParseBudgets
