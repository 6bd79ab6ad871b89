package decoders

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// What a dynamicpb.Message holds once unmarshalled, per thing on the wire,
// as measured live (after a GC) with protobuf-go v1.36 by
// TestProtobufParseCostModel. Every occurrence of a message field is
// charged a message, merged into the last one or not: merging costs time.
// dynamicpb builds a Go map and a Message for every message on the wire,
// so a repeated message of empty elements, two bytes each, holds about
// 190 bytes per element: a 1 MB message of them was 190 MB allocated and
// 1.4 s of CPU, charged nothing, before protoParseCost.
const (
	pbMessageCost = 192 // a message: the Message and its empty maps
	pbFieldsCost  = 160 // a message's first field: its map's first slots
	pbFieldCost   = 32  // a field set in a message (a slot), besides its bytes
	pbElemCost    = 48  // an element of a repeated field: a protoreflect.Value, twice while its list grows
	// A packed element is charged the Value alone: one byte of a packed
	// varint holds 24, and a real message with a long packed list of
	// small numbers would otherwise pass its budget at 1 400 elements.
	pbPackedCost = 24
	pbEntryCost  = 96 // an entry of a map field, besides its bytes
)

// protoParseBudgets is how many output budgets a message's parse may
// hold. dynamicpb holds 33 times the size of a message of {name, value}
// elements with two-letter names (TestProtobufParseCostModel), twice the
// default ratio: three budgets let such messages through and refuse
// what only a hostile message holds (empty elements: 100 times and more).
const protoParseBudgets = 3

// protoRecursionLimit is protobuf-go's default nesting limit: unmarshal
// refuses deeper messages, so the walk need not go further.
const protoRecursionLimit = 10000

// pbFieldShape is what the walk needs of a field, resolved once from its
// descriptor: asking the descriptor for each field on the wire was half
// the walk's time.
type pbFieldShape struct {
	known  bool
	wire   protowire.Type // the wire type unmarshal reads it from (unpacked)
	list   bool
	packed bool // a repeated scalar, which may come packed (bytes)
	isMap  bool
	sub    *pbMessageShape // a message field's, or a map's message values'
}

// pbMessageShape is a message's fields by number.
type pbMessageShape struct {
	dense  []pbFieldShape // numbers below len(dense)
	sparse map[protowire.Number]*pbFieldShape
}

func (m *pbMessageShape) field(num protowire.Number) *pbFieldShape {
	if int(num) < len(m.dense) {
		return &m.dense[num]
	}
	return m.sparse[num] // nil: unknown
}

// protoShapeOf resolves md's fields, and those of the messages they hold,
// once (a recursive message refers to its own shape).
func protoShapeOf(md protoreflect.MessageDescriptor) *pbMessageShape {
	return buildShape(md, map[protoreflect.FullName]*pbMessageShape{})
}

func buildShape(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*pbMessageShape) *pbMessageShape {
	if s, ok := seen[md.FullName()]; ok {
		return s
	}
	s := &pbMessageShape{}
	seen[md.FullName()] = s
	fields := md.Fields()
	maxDense := protowire.Number(0)
	for i := range fields.Len() {
		if n := fields.Get(i).Number(); n < 256 {
			maxDense = max(maxDense, n)
		}
	}
	s.dense = make([]pbFieldShape, maxDense+1)
	for i := range fields.Len() {
		fd := fields.Get(i)
		f := pbFieldShape{known: true, wire: typeOfKind(fd.Kind()), list: fd.IsList(), isMap: fd.IsMap()}
		f.packed = f.list && f.wire != protowire.BytesType && f.wire != protowire.StartGroupType
		switch {
		case fd.IsMap():
			if vd := fd.MapValue(); vd.Message() != nil {
				f.sub = buildShape(vd.Message(), seen)
			}
		case fd.Message() != nil:
			f.sub = buildShape(fd.Message(), seen)
		}
		if n := fd.Number(); n < protowire.Number(len(s.dense)) {
			s.dense[n] = f
		} else {
			if s.sparse == nil {
				s.sparse = map[protowire.Number]*pbFieldShape{}
			}
			s.sparse[n] = &f
		}
	}
	return s
}

// protoParseCost walks b, the wire form of a message of shape s, and adds
// up what unmarshalling it into a dynamicpb.Message will hold, after the
// pb*Cost figures, without allocating: linear in len(b), whatever it
// holds. It stops once the sum passes limit (and returns it), and at the
// first malformed field, leaving that for unmarshal to report.
func protoParseCost(b []byte, s *pbMessageShape, limit int) int {
	cost, _ := protoWalk(b, s, limit, 0, 0)
	return cost
}

// protoWalk adds the cost of the fields in b to cost. It returns at the
// end of b or at an end-group tag (the end of the group it walks), with
// the cost and the bytes consumed (the end tag included).
func protoWalk(b []byte, s *pbMessageShape, limit, cost, depth int) (int, int) {
	if depth > protoRecursionLimit {
		return cost, len(b)
	}
	start := len(b)
	fields := false // whether a known field has been met: the map's first slots
	for len(b) > 0 && cost <= limit {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return cost, start
		}
		if typ == protowire.EndGroupType {
			return cost, start - len(b) + n
		}
		body := b[n:]
		f := s.field(num)
		if f != nil && f.known && !fields {
			fields, cost = true, cost+pbFieldsCost
		}
		if f != nil && f.known && f.sub != nil && !f.isMap && typ == protowire.StartGroupType && f.wire == typ {
			// A group is walked once, where it is: measuring it first
			// (ConsumeFieldValue) would scan nested groups once per level.
			var m int
			cost, m = protoWalk(body, f.sub, limit, cost+pbFieldCost+pbMessageCost, depth+1)
			b = body[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, body)
		if m < 0 {
			return cost, start
		}
		b = body[m:]
		if f == nil || !f.known || !(typ == f.wire || f.list && typ == protowire.BytesType && f.wire != protowire.StartGroupType) {
			cost += n + m // kept as unknown bytes
			continue
		}
		switch {
		case f.isMap:
			cost += pbEntryCost + m
			if f.sub != nil {
				entry, _ := protowire.ConsumeBytes(body)
				cost = protoEntryValueCost(entry, f.sub, limit, cost, depth+1)
			}
		case f.sub != nil:
			if f.list {
				cost += pbElemCost
			} else {
				cost += pbFieldCost
			}
			v, _ := protowire.ConsumeBytes(body)
			cost, _ = protoWalk(v, f.sub, limit, cost+pbMessageCost, depth+1)
		case f.packed && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(body)
			cost += packedElems(v, f.wire) * pbPackedCost
		case f.list:
			cost += pbElemCost + m
		default:
			cost += pbFieldCost + m
		}
	}
	return cost, start - len(b)
}

// protoEntryValueCost adds the cost of a map entry's message value.
func protoEntryValueCost(entry []byte, s *pbMessageShape, limit, cost, depth int) int {
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
			cost, _ = protoWalk(v, s, limit, cost+pbMessageCost, depth)
		}
		entry = entry[m:]
	}
	return cost
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
