package decoders

// ProtoParseCost is protoParseCost, for the tests of package decoders_test.
var ProtoParseCost = protoParseCost
