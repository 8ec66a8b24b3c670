"""FID evaluation protocols as data: every setting that moves an FID value, named and hashed.

Published FIDs differ across libraries in resize kernel, quantization, input normalization,
reference set, sample count and precision. A ``FIDProtocol`` pins all of them; its ``digest`` is a
content hash of the record (including the text that defines each resize kernel), statistics files
carry it, and comparing statistics of two protocols is an error.

Presets:

``pytorch-fid``
    pytorch-fid 0.3's ``InceptionV3``: images at native resolution, resized inside the network with
    ``F.interpolate`` (bilinear, ``align_corners=False``) to 299, input x/255 mapped to [-1, 1].
    Reference statistics computed on the fly from the reference images.
``pytorch-fid@R``
    The same after downscaling generated and reference images to R x R with PIL bicubic (antialiased,
    uint8 out), as the rebuttal's 128-px row did with 256-px LSUN samples.
``adm``
    OpenAI guided-diffusion's evaluator: the TF1 Inception graph, whose own bilinear resize (TF1
    ``resize_bilinear``, half-pixel-free) and (x - 128) / 128 normalization torch-fidelity's
    ``FeatureExtractorInceptionV3`` reproduces; reference statistics precomputed, read from an
    ``.npz`` (``mu``/``sigma``) whose sha256 becomes part of the protocol.
``clean-fid``
    clean-fid's "clean" mode: PIL bicubic resize to 299 on float32 channels (clean-fid's own resizer,
    ``cleanfid.resize.make_resizer``), then (x - 128) / 128 into the TF Inception. clean-fid's own
    feature network is a TorchScript file downloaded at run time (unavailable offline); the same TF
    graph is run as pytorch-fid's network with its internal resize and normalization switched off.

Every preset uses the same Inception weights (``diled.weights.FID_INCEPTION``, one tensor digest),
strict FP32 (TF32 off), and quantizes float generator outputs in [-1, 1] to uint8 by rounding, as
saving a PNG does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from diled import weights as _weights

# What each resize key means; the text is part of the protocol digest.
RESIZE = {
    "torch-bilinear": "pytorch-fid InceptionV3: F.interpolate(x / 255, 299, bilinear, align_corners=False), then 2x - 1",
    "tf1-bilinear": "torch-fidelity FeatureExtractorInceptionV3: TF1 resize_bilinear emulation to 299 on uint8->float32, then (x - 128) / 128",
    "pil-bicubic": "clean-fid resizer: PIL bicubic to 299 per float32 channel (no re-quantization), then (x - 128) / 128",
}
QUANTIZATION = {
    "round": "float in [-1, 1] -> clip -> (x + 1) * 127.5 -> round to nearest -> uint8 (what saving a PNG does)",
    "truncate": "float in [-1, 1] -> clip -> (x + 1) * 127.5 -> floor -> uint8 (what .to(torch.uint8) does)",
}
DOWNSCALE_FILTER = "PIL Image.resize(BICUBIC) on uint8 images (antialiased when shrinking), uint8 out"
REFERENCES = ("on-the-fly", "precomputed")


@dataclass(frozen=True)
class FIDProtocol:
    """Everything that changes an FID value, as data. Construct presets with ``get_protocol``."""

    name: str
    resize: str  # key of RESIZE
    resolution: int | None = None  # downscale every image to R x R first (None: native resolution)
    quantization: str = "round"  # key of QUANTIZATION (float inputs only; uint8 inputs are used as given)
    reference: str = "on-the-fly"  # "on-the-fly" or "precomputed" (.npz with mu/sigma)
    reference_set: str = "held-out"  # which images make the on-the-fly reference (workflow: held-out | train)
    reference_sha256: str | None = None  # precomputed: the .npz's sha256 (bound when the file is read)
    sample_count: int | None = None  # generated images scored: the first N (None: all given)
    weights: str = _weights.FID_INCEPTION.name
    weights_digest: str = _weights.FID_INCEPTION.tensor_digest
    channels: str = "grayscale repeated to RGB; alpha and 16-bit images refused"
    precision: str = "float32, TF32 disabled"
    feature: str = "pool3, 2048-d"

    def __post_init__(self) -> None:
        problems = []
        if self.resize not in RESIZE:
            problems.append(f"resize {self.resize!r} not in {sorted(RESIZE)}")
        if self.quantization not in QUANTIZATION:
            problems.append(f"quantization {self.quantization!r} not in {sorted(QUANTIZATION)}")
        if self.reference not in REFERENCES:
            problems.append(f"reference {self.reference!r} not in {list(REFERENCES)}")
        if self.resolution is not None and not (isinstance(self.resolution, int) and self.resolution >= 8):
            problems.append(f"resolution must be an integer >= 8 or None, got {self.resolution!r}")
        if self.sample_count is not None and self.sample_count < 2:
            problems.append(f"sample_count must be >= 2 or None, got {self.sample_count}")
        if self.reference_sha256 is not None and self.reference != "precomputed":
            problems.append("reference_sha256 only applies to precomputed reference statistics")
        if problems:
            raise ValueError(f"invalid FID protocol {self.name!r}: " + "; ".join(problems))

    def record(self) -> dict:
        """The full record, with the definitions of its keys spelled out (what the digest covers)."""
        rec = dataclasses.asdict(self)
        rec["resize_definition"] = RESIZE[self.resize]
        rec["quantization_definition"] = QUANTIZATION[self.quantization]
        rec["downscale_filter"] = DOWNSCALE_FILTER if self.resolution else "none"
        return rec

    @property
    def digest(self) -> str:
        """Content hash of every setting (16 hex digits); the name is a label and is not hashed, so two
        names for the same settings (a preset and the one-factor variant that equals it) share a digest."""
        rec = self.record()
        rec.pop("name")
        return _hash(rec)

    @property
    def feature_digest(self) -> str:
        """Hash of the fields that change features of a given image set (not reference, not count, not name)."""
        rec = self.record()
        for key in ("name", "reference", "reference_set", "reference_sha256", "sample_count"):
            rec.pop(key)
        return _hash(rec)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.digest})"

    def variant(self, **changes) -> FIDProtocol:
        """A copy with some settings changed (name defaults to ``<name>+<key>=<value>...``)."""
        name = changes.pop("name", None) or self.name + "".join(f"+{k}={v}" for k, v in changes.items())
        return dataclasses.replace(self, name=name, **changes)


def _hash(rec: dict) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]


PYTORCH_FID = FIDProtocol(name="pytorch-fid", resize="torch-bilinear")
ADM = FIDProtocol(name="adm", resize="tf1-bilinear", reference="precomputed")
CLEAN_FID = FIDProtocol(name="clean-fid", resize="pil-bicubic")

PRESETS = {p.name: p for p in (PYTORCH_FID, ADM, CLEAN_FID)}


def get_protocol(name: str) -> FIDProtocol:
    """Preset by name; ``<preset>@R`` downscales to R px first (e.g. ``pytorch-fid@128``)."""
    m = re.fullmatch(r"(?P<base>[a-z-]+)(@(?P<res>\d+))?", name)
    if not m or m["base"] not in PRESETS:
        raise ValueError(f"unknown FID protocol {name!r}; known: {sorted(PRESETS)}, each optionally with @R (e.g. pytorch-fid@128)")
    base = PRESETS[m["base"]]
    if m["res"] is None:
        return base
    return base.variant(name=name, resolution=int(m["res"]))
