"""Hostile pytorch_model.bin files for the corpus (issue 15), written without torch: the legacy
torch.save layout (magic, protocol, sys info, the pickled state dict with persistent storage ids,
the storage keys, then each storage as int64 numel + raw bytes), with fake `torch` modules so that
pickle emits the globals torch.save emits.

    python3 scripts/make_hostile_pickles.py
"""
import collections, io, pickle, struct, sys, types
from pathlib import Path

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
class FloatStorage: pass
FloatStorage.__module__ = "torch"
def _rebuild_tensor_v2(*a): pass
_rebuild_tensor_v2.__module__ = "torch._utils"
torch.FloatStorage = FloatStorage
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils

class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel

class Tensor:
    def __init__(self, storage, shape, stride):
        self.storage, self.shape, self.stride = storage, shape, stride
    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.storage, 0, self.shape, self.stride, False, collections.OrderedDict()))

class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel, None)
        return None

def legacy(tensors):
    f = io.BytesIO()
    for x in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(x, f, protocol=2)
    P(f, protocol=2).dump(tensors)
    pickle.dump(["0"], f, protocol=2)
    f.write(struct.pack("<q", 1) + struct.pack("<f", 1.5))
    return f.getvalue()

root = Path(__file__).resolve().parent.parent
s = Storage("0", 1)
# one float expanded by stride 0 to 4096 x 4096 (64 MiB): the file is a few hundred bytes
big = legacy({"shared.weight": Tensor(s, (4096, 4096), (0, 0))})
(root / "crates/t5-core/tests/corpus/pickle/BadWeights-stride0_view_expands_one_float_to_64MiB.bin").write_bytes(big)
# expanded to 128 x 1024 (512 KiB): within the per-file bound, beyond a small memory limit
(root / "test/fixtures/formats/stride0-512KiB.bin").write_bytes(legacy({"shared.weight": Tensor(s, (128, 1024), (0, 0))}))
print(len(big), "bytes")
