package decoders_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// compileProto compiles testdata/<dir>/<file> with protocompile and
// returns the message called name: the tests' protobuf encoder, which
// shares no code with the decoders under test.
func compileProto(t testing.TB, dir, file, name string) protoreflect.MessageDescriptor {
	t.Helper()
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{filepath.Join("testdata", dir)}}),
	}
	files, err := c.Compile(context.Background(), file)
	require.NoError(t, err)
	d := files[0].FindDescriptorByName(protoreflect.FullName(name))
	require.NotNil(t, d, "%s in %s", name, file)
	md, ok := d.(protoreflect.MessageDescriptor)
	require.True(t, ok)
	return md
}

// encodeJSON encodes the protojson text of a message of type md as
// protobuf, with map entries sorted so that test outputs are stable.
func encodeJSON(t testing.TB, md protoreflect.MessageDescriptor, text []byte) []byte {
	t.Helper()
	msg := dynamicpb.NewMessage(md)
	require.NoError(t, protojson.Unmarshal(text, msg))
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	require.NoError(t, err)
	return b
}

// encodeJSONFile is encodeJSON of a file.
func encodeJSONFile(t testing.TB, md protoreflect.MessageDescriptor, file string) []byte {
	t.Helper()
	text, err := os.ReadFile(file)
	require.NoError(t, err)
	return encodeJSON(t, md, text)
}
