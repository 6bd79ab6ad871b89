package decoders

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// What a dynamicpb.Message holds once unmarshalled, per thing on the wire,
// as measured live (after a GC) with protobuf-go v1.36 by
// TestProtobufParseCostModel. Every occurrence of a message field is
// charged a message, merged into the last one or not: merging costs time. dynamicpb builds a Go map and a Message for
// every message on the wire, so a repeated message of empty elements,
// two bytes each, holds about 190 bytes per element: a 1 MB message of
// them was 190 MB allocated and 1.4 s of CPU, charged nothing, before
// protoParseCost.
const (
	pbMessageCost = 192 // a message: the Message and its field map
	pbFieldCost   = 48  // a field set in a message (its map slot), besides its bytes
	pbElemCost    = 48  // an element of a repeated field: a protoreflect.Value, twice while its list grows
	// A packed element is charged the Value alone: one byte of a packed
	// varint holds 24, and a real message with a long packed list of
	// small numbers would otherwise pass its budget at 1 400 elements.
	pbPackedCost = 24
	pbEntryCost  = 96 // an entry of a map field, besides its bytes
)

// protoRecursionLimit is protobuf-go's default nesting limit: unmarshal
// refuses deeper messages, so the walk need not go further.
const protoRecursionLimit = 10000

// protoParseCost walks b, the wire form of a message of type md, and adds
// up what unmarshalling it into a dynamicpb.Message will hold, after the
// pb*Cost figures, without allocating: linear in len(b), whatever it
// holds. It stops once the sum passes limit (and returns it), and at the
// first malformed field, leaving that for unmarshal to report.
func protoParseCost(b []byte, md protoreflect.MessageDescriptor, limit int) int {
	cost, _ := protoWalk(b, md, limit, 0, 0)
	return cost
}

// protoWalk adds the cost of the fields in b to cost. group, when not 0,
// is the number of the group b is inside: its end tag ends the walk. It
// returns the cost and the bytes consumed (including a group's end tag).
func protoWalk(b []byte, md protoreflect.MessageDescriptor, limit, cost, depth int) (int, int) {
	if depth > protoRecursionLimit {
		return cost, len(b)
	}
	fields := md.Fields()
	start := len(b)
	for len(b) > 0 && cost <= limit {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return cost, start
		}
		if typ == protowire.EndGroupType {
			return cost, start - len(b) + n
		}
		body := b[n:]
		fd := fields.ByNumber(num)
		if fd != nil && fd.Message() != nil && typ == protowire.StartGroupType && typ == typeOfKind(fd.Kind()) {
			// A group is walked once, where it is: measuring it first
			// (ConsumeFieldValue) would scan nested groups once per level.
			var m int
			cost, m = protoWalk(body, fd.Message(), limit, cost+pbFieldCost+pbMessageCost, depth+1)
			b = body[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, body)
		if m < 0 {
			return cost, start
		}
		field := b[:n+m]
		b = body[m:]
		if fd == nil || !wireTypeFits(fd, typ) {
			cost += len(field) // kept as unknown bytes
			continue
		}
		switch {
		case fd.IsMap():
			cost += pbEntryCost + m
			if vd := fd.MapValue(); vd.Message() != nil {
				cost = protoEntryValueCost(body[:m], vd.Message(), limit, cost, depth+1)
			}
		case fd.Message() != nil:
			if fd.IsList() {
				cost += pbElemCost
			} else {
				cost += pbFieldCost
			}
			v, _ := protowire.ConsumeBytes(body)
			cost, _ = protoWalk(v, fd.Message(), limit, cost+pbMessageCost, depth+1)
		case fd.IsList():
			if typ == protowire.BytesType && fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.BytesKind {
				v, _ := protowire.ConsumeBytes(body)
				cost += packedElems(v, typeOfKind(fd.Kind())) * pbPackedCost
			} else {
				cost += pbElemCost + m
			}
		default:
			cost += pbFieldCost + m
		}
	}
	return cost, start - len(b)
}

// protoEntryValueCost adds the cost of a map entry's message value.
func protoEntryValueCost(entry []byte, md protoreflect.MessageDescriptor, limit, cost, depth int) int {
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			return cost
		}
		entry = entry[n:]
		m := protowire.ConsumeFieldValue(num, typ, entry)
		if m < 0 {
			return cost
		}
		if num == 2 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(entry)
			cost, _ = protoWalk(v, md, limit, cost+pbMessageCost, depth)
		}
		entry = entry[m:]
	}
	return cost
}

// wireTypeFits reports whether unmarshal reads a field of fd's kind
// from wire type typ (else it keeps the field as unknown bytes).
func wireTypeFits(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	want := typeOfKind(fd.Kind())
	return typ == want || fd.IsList() && typ == protowire.BytesType && want != protowire.StartGroupType
}

// typeOfKind is the wire type of a field of kind k (unpacked).
func typeOfKind(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType
}

// packedElems is how many elements of wire type typ packed b holds.
func packedElems(b []byte, typ protowire.Type) int {
	switch typ {
	case protowire.Fixed32Type:
		return len(b) / 4
	case protowire.Fixed64Type:
		return len(b) / 8
	}
	n := 0
	for _, c := range b {
		if c < 0x80 {
			n++
		}
	}
	return n
}
