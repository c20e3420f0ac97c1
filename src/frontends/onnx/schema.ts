/**
 * The subset of the ONNX protobuf schema that kiln reads, written from the field numbers of `onnx.proto3`
 * (ONNX 1.22.0) and the value messages of `onnx-data.proto` (SequenceProto / OptionalProto / MapProto, used by the
 * backend-test `.pb` files for non-tensor values). Fields kiln never reads (doc strings, metadata, sharding,
 * training info, quantization annotations) are left out: protobuf skips unknown fields on the wire.
 *
 * Enum-typed fields are declared as `int32` so that unknown enum values survive decoding as plain numbers.
 * Parsed with `keepCase: true`, so decoded messages carry the snake_case field names used here.
 */
export const ONNX_SCHEMA_PROTO = `
syntax = "proto3";
package onnx;

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}

message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated FunctionProto functions = 25;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated SparseTensorProto sparse_initializer = 15;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string domain = 7;
  string overload = 8;
}

message AttributeProto {
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  TypeProto tp = 14;
  repeated TypeProto type_protos = 15;
  int32 type = 20;
  string ref_attr_name = 21;
  SparseTensorProto sparse_tensor = 22;
  repeated SparseTensorProto sparse_tensors = 23;
}

message TensorProto {
  message Segment {
    int64 begin = 1;
    int64 end = 2;
  }
  repeated int64 dims = 1;
  int32 data_type = 2;
  Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  string name = 8;
  bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  repeated StringStringEntryProto external_data = 13;
  int32 data_location = 14;
}

message SparseTensorProto {
  TensorProto values = 1;
  TensorProto indices = 2;
  repeated int64 dims = 3;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  message Sequence {
    TypeProto elem_type = 1;
  }
  message Map {
    int32 key_type = 1;
    TypeProto value_type = 2;
  }
  message Optional {
    TypeProto elem_type = 1;
  }
  message SparseTensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    SparseTensor sparse_tensor_type = 8;
    Optional optional_type = 9;
  }
  string denotation = 6;
}

message FunctionProto {
  string name = 1;
  repeated string input = 4;
  repeated string output = 5;
  repeated string attribute = 6;
  repeated NodeProto node = 7;
  repeated OperatorSetIdProto opset_import = 9;
  string domain = 10;
  repeated AttributeProto attribute_proto = 11;
  repeated ValueInfoProto value_info = 12;
  string overload = 13;
}

message SequenceProto {
  string name = 1;
  int32 elem_type = 2;
  repeated TensorProto tensor_values = 3;
  repeated SparseTensorProto sparse_tensor_values = 4;
  repeated SequenceProto sequence_values = 5;
  repeated MapProto map_values = 6;
  repeated OptionalProto optional_values = 7;
}

message MapProto {
  string name = 1;
  int32 key_type = 2;
  repeated int64 keys = 3;
  repeated bytes string_keys = 4;
  SequenceProto values = 5;
}

message OptionalProto {
  string name = 1;
  int32 elem_type = 2;
  TensorProto tensor_value = 3;
  SparseTensorProto sparse_tensor_value = 4;
  SequenceProto sequence_value = 5;
  MapProto map_value = 6;
  OptionalProto optional_value = 7;
}
`;
