"""Make an exported ONNX file small enough for a web page without changing a single computed value: float32 weights
that are exactly representable in float16 (the tiny world's checkpoints are stored in float16) are stored as float16
and cast back to float32 on load, and the exporter's per-node debugging metadata is dropped."""
from __future__ import annotations

import numpy as np

MIN_ELEMENTS = 256  # small constants stay as they are


def compact(model):
    """The same graph with fp16-exact float32 initializers stored in fp16 (+ a Cast each); returns the model."""
    import onnx
    from onnx import helper, numpy_helper

    casts, keep = [], []
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32 and a.size >= MIN_ELEMENTS and np.array_equal(a.astype(np.float16).astype(np.float32), a):
            half = numpy_helper.from_array(a.astype(np.float16), f"{init.name}__fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            keep.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    nodes = casts + list(model.graph.node)
    for n in nodes:
        n.doc_string = ""
        del n.metadata_props[:]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model
