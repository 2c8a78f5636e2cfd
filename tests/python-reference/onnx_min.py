"""A minimal ONNX protobuf schema (the few messages and fields this reference reads or edits), built with
google.protobuf (Debian's python3-protobuf) since the `onnx` package is not installed. Fields not declared here are
kept as unknown fields and written back unchanged."""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _build():
    fdp = descriptor_pb2.FileDescriptorProto(name="onnx_min.proto", package="onnx_min", syntax="proto2")

    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".onnx_min." + type_name
        return m

    OPT, REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    S, I64, I32, B, M, FL = _F.TYPE_STRING, _F.TYPE_INT64, _F.TYPE_INT32, _F.TYPE_BYTES, _F.TYPE_MESSAGE, _F.TYPE_FLOAT
    msg("OperatorSetIdProto", [("domain", 1, S, OPT, None), ("version", 2, I64, OPT, None)])
    msg("TensorProto", [("dims", 1, I64, REP, None), ("data_type", 2, I32, OPT, None), ("float_data", 4, FL, REP, None),
                        ("int64_data", 7, I64, REP, None), ("name", 8, S, OPT, None), ("raw_data", 9, B, OPT, None)])
    msg("AttributeProto", [("name", 1, S, OPT, None), ("f", 2, FL, OPT, None), ("i", 3, I64, OPT, None),
                           ("s", 4, B, OPT, None), ("t", 5, M, OPT, "TensorProto"), ("ints", 8, I64, REP, None),
                           ("type", 20, I32, OPT, None)])
    msg("NodeProto", [("input", 1, S, REP, None), ("output", 2, S, REP, None), ("name", 3, S, OPT, None),
                      ("op_type", 4, S, OPT, None), ("attribute", 5, M, REP, "AttributeProto"), ("domain", 7, S, OPT, None)])
    msg("ValueInfoProto", [("name", 1, S, OPT, None)])
    msg("GraphProto", [("node", 1, M, REP, "NodeProto"), ("name", 2, S, OPT, None), ("initializer", 5, M, REP, "TensorProto"),
                       ("input", 11, M, REP, "ValueInfoProto"), ("output", 12, M, REP, "ValueInfoProto"),
                       ("value_info", 13, M, REP, "ValueInfoProto")])
    msg("ModelProto", [("ir_version", 1, I64, OPT, None), ("graph", 7, M, OPT, "GraphProto"),
                       ("opset_import", 8, M, REP, "OperatorSetIdProto")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    factory = message_factory.MessageFactory(pool)
    return {n: factory.GetPrototype(pool.FindMessageTypeByName("onnx_min." + n))
            for n in ("ModelProto", "GraphProto", "NodeProto", "TensorProto", "AttributeProto", "ValueInfoProto")}


_classes = _build()
ModelProto = _classes["ModelProto"]
NodeProto = _classes["NodeProto"]
ValueInfoProto = _classes["ValueInfoProto"]
AttributeProto = _classes["AttributeProto"]
