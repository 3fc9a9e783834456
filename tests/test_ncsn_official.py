"""The official NCSN / NCSNv2 checkpoints in zoo: the torch-free reader, the NCSNv2 networks, the converter
(Python API and `zoo convert`) against the official networks' outputs, its errors, and the registry entries."""

import collections
import io
import pickle
import shutil
import struct
import sys
import types
import zipfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo import CheckpointError, ConfigError, HubError
from zoo._cli import main
from zoo._torch_pickle import load as load_torch
from zoo.ncsn import NCSNConfig, NCSNv2, NCSNv2Deeper, NCSNv2Deepest, convert_official, from_official
from zoo.ncsn._ncsnv2 import max_pool5
from zoo.ncsn._official import OFFICIAL_MODELS, read_official


# The shared folder sits next to the repository (../shared), as the data does.
REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ncsn_official"
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason=f"official reference checkpoints not found in {REF}")

# file stem -> what the weights cannot say (no config.yml beside the reference files)
CASES = {
    "ncsn_v1_32x32x3_ngf8_L10_seed0": {"image_size": 32, "sigma_begin": 1.0, "sigma_end": 0.01},
    "ncsn_v1_28x28x1_ngf8_L10_seed0_legacy": {"image_size": 28, "sigma_begin": 1.0, "sigma_end": 0.01},
    "ncsn_v2_32x32x3_ngf8_L232_seed0": {"image_size": 32},
    "ncsn_v2deeper_64x64x3_ngf8_L788_seed0_legacy": {"image_size": 64},
}
VARIANTS = {"ncsn_v1": "v1", "ncsn_v2_": "ncsnv2", "ncsn_v2deeper": "ncsnv2-deeper"}


@eqx.filter_jit
def _scores(model, x, y):
    return jax.vmap(model.score)(x, y)


def _rel_error(model, ref, key):
    """max |zoo - official| / max |official| on the reference inputs (the official output is NCHW)."""
    x = jnp.asarray(ref["x_nchw"].transpose(0, 2, 3, 1))
    out = np.asarray(_scores(model, x, jnp.asarray(ref["labels"]))).transpose(0, 3, 1, 2)
    want = ref[key]
    assert out.shape == want.shape
    return float(np.abs(out - want).max() / np.abs(want).max())


# --- the reader --------------------------------------------------------------------------------------------------


@needs_ref
def test_reader_reads_both_torch_formats():
    zipped = load_torch(REF / "ncsn_v2_32x32x3_ngf8_L232_seed0.pth")
    legacy = load_torch(REF / "ncsn_v2deeper_64x64x3_ngf8_L788_seed0_legacy.pth")
    for states in (zipped, legacy):
        state_dict, optimizer, epoch, step, shadow = states
        assert isinstance(state_dict, collections.OrderedDict) and all(k.startswith("module.") for k in state_dict)
        assert state_dict["module.sigmas"].dtype == np.float32 and state_dict["module.sigmas"][0] > 1.0
        assert set(optimizer) == {"state", "param_groups"} and (epoch, step) == (1, 1)
        assert not any(k.startswith("module.") for k in shadow)
        # the EMA shadow is the weights plus 0.01 N(0, 1): close to, not equal to, the state dict's
        diff = shadow["begin_conv.weight"] - state_dict["module.begin_conv.weight"]
        assert 0.003 < diff.std() < 0.03
    ckpt = read_official(REF / "ncsn_v1_28x28x1_ngf8_L10_seed0_legacy.pth")
    assert ckpt.ema is None and "begin_conv.weight" in ckpt.state_dict and ckpt.config_yml is None
    assert ckpt.state_dict["begin_conv.weight"].shape == (8, 1, 3, 3)


class _Storage:
    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, array


def _torch_save(path: Path, obj, monkeypatch, *, legacy: bool, storage_module: str = "torch") -> None:
    """`torch.save` without torch, for tests: `obj` with numpy arrays as float32 tensors, in the zip or the legacy
    layout, its globals named as torch names them (stand-in modules make pickle write those names)."""
    torch, utils, cuda = (types.ModuleType(n) for n in ("torch", "torch._utils", "torch.cuda"))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_type = type("FloatStorage", (), {"__module__": storage_module})
    (cuda if storage_module == "torch.cuda" else torch).FloatStorage = storage_type
    for name, module in (("torch", torch), ("torch._utils", utils), ("torch.cuda", cuda)):
        monkeypatch.setitem(sys.modules, name, module)
    storages: list[_Storage] = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                ref = ("storage", storage_type, o.key, "cuda:0", o.array.size)
                return ref + (None,) if legacy else ref
            return None

        def reducer_override(self, o):
            if not isinstance(o, np.ndarray):
                return NotImplemented
            storages.append(_Storage(str(len(storages)), np.ascontiguousarray(o, "<f4").reshape(-1)))
            stride = tuple(int(np.prod(o.shape[i + 1 :])) for i in range(o.ndim))
            return _rebuild_tensor_v2, (storages[-1], 0, tuple(o.shape), stride, False, collections.OrderedDict())

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    if legacy:
        data = _legacy_stream(buffer.getvalue() + pickle.dumps([st.key for st in storages], protocol=2))
        data += b"".join(struct.pack("<q", st.array.size) + st.array.tobytes() for st in storages)
    else:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            archive.writestr("archive/byteorder", "little")
            for st in storages:
                archive.writestr(f"archive/data/{st.key}", st.array.tobytes())
        data = out.getvalue()
    path.write_bytes(data)


@pytest.mark.parametrize("legacy", [False, True])
def test_reader_round_trips_a_written_checkpoint_with_cuda_storages(legacy, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    obj = [collections.OrderedDict([("module.w", weight), ("module.b", weight[:, 0, 0, 0].copy())]),
           {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999)}]}, 3, 7, {"w": weight.T.copy()}]
    _torch_save(tmp_path / "c.pth", obj, monkeypatch, legacy=legacy, storage_module="torch.cuda")
    back = load_torch(tmp_path / "c.pth")
    np.testing.assert_array_equal(back[0]["module.w"], weight)
    np.testing.assert_array_equal(back[4]["w"], weight.T)
    assert back[1]["param_groups"][0]["betas"] == (0.9, 0.999) and back[2:4] == [3, 7]


def _legacy_stream(payload: bytes) -> bytes:
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    return header + payload


def _zip_archive(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


@pytest.mark.parametrize("layout", ["zip", "legacy"])
@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("torch.nn.modules.conv", "Conv2d"),
                                          ("torch._utils", "_rebuild_parameter")])
def test_reader_refuses_other_globals(layout, module, name, tmp_path):
    marker = tmp_path / "pwned"
    text = f"touch {marker}".encode()
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"(X" + struct.pack("<I", len(text)) + text + b"tR."
    path = tmp_path / "evil.pth"
    path.write_bytes(_zip_archive(payload) if layout == "zip" else _legacy_stream(payload))
    with pytest.raises(CheckpointError, match=f"Refusing to load the pickle global {module}.{name}"):
        load_torch(path)
    with pytest.raises(CheckpointError, match="Refusing"):
        from_official(path, config={"image_size": 32})
    assert not marker.exists()


@needs_ref
@pytest.mark.parametrize("stem", ["ncsn_v1_32x32x3_ngf8_L10_seed0", "ncsn_v1_28x28x1_ngf8_L10_seed0_legacy"])
def test_reader_truncated_and_foreign_files(stem, tmp_path):
    data = (REF / f"{stem}.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        from_official(cut, config=CASES[stem])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        from_official(text)
    other = tmp_path / "list.pth"
    other.write_bytes(_legacy_stream(pickle.dumps([1, 2, 3], protocol=2) + pickle.dumps([], protocol=2)))
    with pytest.raises(CheckpointError, match="not an official NCSN checkpoint"):
        from_official(other)


# --- the NCSNv2 networks -------------------------------------------------------------------------------------------


def test_max_pool5_matches_reduce_window(getkey):
    x = jax.random.normal(getkey(), (7, 6, 3))
    want = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (5, 5, 1), (1, 1, 1), ((2, 2), (2, 2), (0, 0)))
    np.testing.assert_array_equal(np.asarray(max_pool5(x)), np.asarray(want))


@pytest.mark.parametrize("net, size, halvings", [(NCSNv2, 32, 1), (NCSNv2Deeper, 64, 2), (NCSNv2Deepest, 256, 3)])
def test_ncsnv2_networks_shapes(net, size, halvings):
    variant = {NCSNv2: "ncsnv2", NCSNv2Deeper: "ncsnv2-deeper", NCSNv2Deepest: "ncsnv2-deepest"}[net]
    cfg = NCSNConfig(image_size=size, channels=3, ngf=4, variant=variant, num_scales=5)
    model = eqx.filter_eval_shape(lambda k: cfg.build(key=k), jax.random.key(0))
    assert type(model.net) is net and net.downsampling() == halvings
    out = eqx.filter_eval_shape(lambda m, x: m.score(x, jnp.int32(2)), model, jnp.zeros(cfg.shape))
    assert out.shape == cfg.shape
    # The widest stage is 2 ngf (NCSNv2) or 4 ngf (the deeper two), as in models/ncsnv2.py.
    assert model.net.stages[-1][0].conv2.weight.shape[-1] == 4 * (2 if net is NCSNv2 else 4)
    with pytest.raises(ConfigError, match=f"multiple of {2**halvings}"):
        NCSNConfig(image_size=size + 2 ** (halvings - 1), channels=3, variant=variant)


def test_old_variant_name_still_loads():
    cfg = NCSNConfig(image_size=12, ngf=4, variant="v2", num_scales=4)
    assert cfg.variant == "v1-unconditional" and cfg == NCSNConfig.from_dict({**cfg.to_dict(), "variant": "v2"})
    with pytest.raises(ConfigError, match="variant must be one of"):
        NCSNConfig(variant="v3")


@pytest.mark.slow
def test_ncsnv2_trains_with_the_shared_driver_and_samples(getkey, tmp_path):
    cfg = NCSNConfig(image_size=8, channels=1, ngf=2, variant="ncsnv2", sigma_begin=3.0, num_scales=3,
                     steps_per_level=1, step_lr=1e-3, denoise=True, dequantize=False)
    model = cfg.build(key=getkey())
    data = np.random.default_rng(0).uniform(size=(32, 8, 8, 1)).astype(np.float32)
    tc = zoo.TrainConfig(steps=2, batch_size=8, learning_rate=1e-3, ema_decay=0.999, log_every=1, checkpoint_every=2)
    result = zoo.train(model, data, tc, key=getkey(), workdir=tmp_path / "run")
    assert np.isfinite(result.history[-1]["loss"])
    before, after = (np.asarray(m.net.end.weight) for m in (model, result.model))
    assert not np.allclose(before, after)
    samples = eqx.filter_jit(lambda m, k: m.sample(2, key=k))(result.ema, getkey())
    assert samples.shape == (2, 8, 8, 1) and bool(jnp.all(jnp.isfinite(samples)))


def test_presets_carry_the_official_configs():
    cifar = zoo.get_preset("ncsnv2/cifar10")
    c, t = cifar.config, cifar.train
    assert (c.variant, c.ngf, c.sigma_begin, c.sigma_end, c.num_scales) == ("ncsnv2", 128, 50.0, 0.01, 232)
    assert (c.steps_per_level, c.step_lr, c.denoise, t.ema_decay, t.learning_rate) == (5, 6.2e-6, True, 0.999, 1e-4)
    ffhq = zoo.get_preset("ncsnv2/ffhq256").config
    assert (ffhq.variant, ffhq.image_size, ffhq.num_scales, ffhq.step_lr) == ("ncsnv2-deepest", 256, 2311, 9e-7)
    assert zoo.get_preset("ncsnv2/church64").config.variant == "ncsnv2-deeper"


# --- the converter against the official outputs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Per reference file: the models from the Python API and the folders written by `zoo convert`."""
    out = {}
    root = tmp_path_factory.mktemp("converted")
    for stem, settings in CASES.items():
        folder = root / stem
        args = ["convert", "ncsn-official", str(REF / f"{stem}.pth"), "--out", str(folder)]
        args += [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
        assert main(args) == 0
        out[stem] = folder
    return out


@needs_ref
@pytest.mark.parametrize("stem", list(CASES))
def test_converted_models_reproduce_the_official_outputs(stem, converted):
    ref = np.load(REF / f"{stem}.npz")
    variant = next(v for k, v in VARIANTS.items() if stem.startswith(k))
    raw = from_official(REF / f"{stem}.pth", weights="raw", config=CASES[stem])
    assert raw.config.variant == variant and raw.config.ngf == 8
    assert _rel_error(raw, ref, "score_nchw") <= 1e-4
    bundle = zoo.load_bundle(converted[stem])
    assert bundle.config == raw.config
    assert _rel_error(bundle.model, ref, "score_nchw") <= 1e-4
    if variant == "v1":
        assert bundle.ema is None
        with pytest.raises(CheckpointError, match="no EMA weights"):
            from_official(REF / f"{stem}.pth", weights="ema", config=CASES[stem])
        return
    np.testing.assert_allclose(raw.sigmas, ref["sigmas"], rtol=1e-6)
    ema = from_official(REF / f"{stem}.pth", config=CASES[stem])  # EMA by default, as the official sampler
    assert _rel_error(ema, ref, "score_ema_nchw") <= 1e-4
    assert _rel_error(zoo.load(converted[stem]), ref, "score_ema_nchw") <= 1e-4  # zoo.load: EMA by default
    # the EMA and raw outputs differ by far more than the tolerance: the test tells them apart
    assert _rel_error(raw, ref, "score_ema_nchw") > 1e-2


@needs_ref
def test_run_folder_with_config_yml(tmp_path):
    run = tmp_path / "logs" / "cifar10"
    run.mkdir(parents=True)
    shutil.copy(REF / "ncsn_v2_32x32x3_ngf8_L232_seed0.pth", run / "checkpoint_5000.pth")
    shutil.copy(REF / "ncsn_v2_32x32x3_ngf8_L232_seed0.pth", run / "checkpoint.pth")
    (run / "config.yml").write_text(
        "!!python/object:argparse.Namespace\n"
        "data: !!python/object:argparse.Namespace\n  channels: 3\n  dataset: CIFAR10\n  image_size: 32\n"
        "  logit_transform: false\n  rescaled: false\n  uniform_dequantization: false\n"
        "model: !!python/object:argparse.Namespace\n  ngf: 8\n  nonlinearity: elu\n  normalization: InstanceNorm++\n"
        "  num_classes: 232\n  sigma_begin: 50\n  sigma_dist: geometric\n  sigma_end: 0.01\n  spec_norm: false\n"
        "sampling: !!python/object:argparse.Namespace\n  ckpt_id: 5000\n  denoise: true\n  n_steps_each: 4\n"
        "  step_lr: 3.0e-06\n"
    )
    ckpt = read_official(run)
    assert ckpt.path.name == "checkpoint_5000.pth"  # the one sampling.ckpt_id names
    model = from_official(run)
    c = model.config
    assert (c.image_size, c.sigma_begin, c.steps_per_level, c.step_lr, c.denoise) == (32, 50.0, 4, 3e-6, True)
    folder = convert_official(run, tmp_path / "ncsnv2-test", weights="ema")
    meta = zoo.load_bundle(folder).meta
    assert meta["training"]["dataset"] == "cifar10" and meta["training"]["steps"] == 1 and not meta["has_ema"]
    card = (folder / "README.md").read_text()
    assert "zoo convert ncsn-official" in card and "Yang Song" in card and "step_lr 3e-06" in card
    # config.yml may hold the Namespace tag only: any other Python tag is refused before it is built
    marker = tmp_path / "pwned"
    (run / "config.yml").write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="argparse.Namespace"):
        from_official(run)
    assert not marker.exists()


@needs_ref
def test_converter_errors_name_the_problem(tmp_path, monkeypatch, capsys):
    stem = "ncsn_v2_32x32x3_ngf8_L232_seed0"
    path = REF / f"{stem}.pth"
    with pytest.raises(ConfigError, match="image_size"):
        from_official(path)  # the weights do not say the image size
    with pytest.raises(ConfigError, match="ngf=8"):
        from_official(path, config={"image_size": 32, "ngf": 16})
    states = load_torch(path)

    def edited(state_dict, name, shadow=states[4]):
        _torch_save(tmp_path / name, [state_dict, *states[1:4], shadow], monkeypatch, legacy=True)
        return tmp_path / name

    sd = collections.OrderedDict(states[0])
    del sd["module.res2.0.conv1.weight"]
    sd["module.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(CheckpointError, match=r"missing 1 tensor.*res2\.0\.conv1\.weight.*unknown tensor.*extra"):
        from_official(edited(sd, "keys.pth"), weights="raw", config={"image_size": 32})
    shadow = {k: v for k, v in states[4].items() if k != "begin_conv.bias"}
    with pytest.raises(CheckpointError, match=r"EMA shadow .*missing 1 tensor.*begin_conv\.bias"):
        from_official(edited(states[0], "ema.pth", shadow), config={"image_size": 32})
    sd = collections.OrderedDict(states[0], **{"module.end_conv.weight": np.zeros((3, 8, 5, 5), np.float32)})
    with pytest.raises(CheckpointError, match="shape mismatch for end_conv.weight"):
        from_official(edited(sd, "shape.pth"), weights="raw", config={"image_size": 32})
    sd = collections.OrderedDict((k.replace("normalizer", "norm"), v) for k, v in states[0].items())
    with pytest.raises(CheckpointError, match="unsupported architecture"):
        from_official(edited(sd, "arch.pth"), config={"image_size": 32})
    # nothing half-written: a failed conversion leaves no folder; the CLI says what to pass
    with pytest.raises(ConfigError):
        convert_official(path, tmp_path / "out")
    assert main(["convert", "ncsn-official", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "--set image_size=" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the registry ------------------------------------------------------------------------------------------------


def test_official_names_say_how_to_convert_when_offline():
    assert set(OFFICIAL_MODELS) <= set(zoo.list_models("ncsn*"))
    assert {"ncsnv2-cifar10", "ncsnv2-ffhq256", "ncsn-mnist-song2019"} <= set(OFFICIAL_MODELS)
    with pytest.raises(HubError, match=r"(?s)zoo convert ncsn-official .*--out ncsnv2-cifar10"):
        zoo.load("ncsnv2-cifar10", offline=True)
    assert zoo.model_info("ncsnv2-bedroom128").preset == "ncsnv2/bedroom128"
