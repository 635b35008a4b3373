"""Measured defaults (cnnkit.speed): the bf16/fp32 micro-benchmark, its cache, the decisions
taken from it and the one warning for a flag that is slower on this CPU."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

import cnnkit
from cnnkit import perf
from cnnkit.speed import measure, policy

# Figures of the kind each CPU gives (GFLOP/s): native bf16 (this Zen 4), emulated (Zen 3).
NATIVE = measure.Measurement(cpu="test CPU", torch=torch.__version__, threads=2,
                             fp32_matmul_gflops=187.0, bf16_matmul_gflops=359.0,
                             fp32_conv_gflops=194.0, bf16_conv_gflops=305.0)
EMULATED = measure.Measurement(cpu="AMD EPYC 7B13, AVX2", torch=torch.__version__, threads=2,
                               fp32_matmul_gflops=90.0, bf16_matmul_gflops=0.8,
                               fp32_conv_gflops=80.0, bf16_conv_gflops=2.0)
NOISE = measure.Measurement(cpu="test CPU", torch=torch.__version__, threads=2,
                            fp32_matmul_gflops=100.0, bf16_matmul_gflops=120.0,
                            fp32_conv_gflops=100.0, bf16_conv_gflops=110.0)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty speed cache, no measurement in this process, no warning given yet."""
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path))
    monkeypatch.delenv("CNNKIT_PERF_CACHE", raising=False)
    monkeypatch.setattr(measure, "_MEASURED", {})
    monkeypatch.setattr(policy, "_WARNED", set())
    return tmp_path


def test_bf16_speedup_is_the_geometric_mean_of_the_ratios():
    assert NATIVE.bf16_speedup == pytest.approx(math.sqrt(359 / 187 * 305 / 194))
    assert EMULATED.bf16_speedup < 0.05


@pytest.mark.parametrize("figures, cpu_choice", [(NATIVE, "bf16"), (EMULATED, "fp32"),
                                                 (NOISE, "fp32")])  # 1.15x: within the noise
def test_default_precision_follows_the_measurement(figures, cpu_choice):
    assert policy.default_precision("cpu", figures) == cpu_choice
    assert policy.default_precision("cuda", figures) == "bf16"  # CUDA: bf16 whatever the CPU
    assert policy.default_precision("mps", figures) == "fp32"


def test_perf_default_precision_uses_this_machines_measurement(fresh, monkeypatch):
    monkeypatch.setattr(measure, "_MEASURED", {"m": EMULATED})
    assert perf.default_precision("cpu") == "fp32"
    monkeypatch.setattr(measure, "_MEASURED", {"m": NATIVE})
    assert perf.default_precision("cpu") == "bf16"
    assert perf.settings()["cpu_bf16_speedup"] == round(NATIVE.bf16_speedup, 2)


def test_auto_precision_is_exact_fp32_on_cpu_and_bf16_on_cuda():
    assert policy.autocast_dtype("cpu", "auto") is None
    assert policy.autocast_dtype("cuda", "auto") == torch.bfloat16
    assert policy.autocast_dtype("cpu", "bf16") == torch.bfloat16
    assert policy.autocast_dtype("cuda", "fp32") is None


def test_slow_bf16_warns_once_per_process_and_is_honoured(fresh):
    with pytest.warns(cnnkit.PerformanceWarning) as caught:
        texts = policy.check_flags("cpu", "bf16", measurement=EMULATED)
    assert len(caught) == 1 and str(caught[0].message) == texts[0]
    text = texts[0]
    assert text.startswith("precision='bf16' on this CPU (AMD EPYC 7B13, AVX2; ")
    assert "~" in text and "x slower than fp32" in text and "0.8 vs 90.0 GFLOP/s" in text
    assert text.endswith("use precision='auto'")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second time: no warning
        policy.check_flags("cpu", "bf16", measurement=EMULATED)
    # the flag is honoured: the engine still autocasts to bf16
    assert policy.plan("cpu", "bf16").autocast_dtype == torch.bfloat16


def test_no_warning_where_the_flag_is_fast_or_off_the_cpu(fresh):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert policy.check_flags("cpu", "bf16", measurement=NATIVE) == []
        assert policy.check_flags("cpu", "bf16", measurement=NOISE) == []  # not clearly slower
        assert policy.check_flags("cuda", "bf16", True, measurement=EMULATED) == []
        assert policy.check_flags("cpu", "fp32", True, measurement=EMULATED,
                                  capability="AVX512") == []


def test_jit_compile_warns_where_the_kernels_gain_nothing(fresh):
    assert policy.jit_kernels_fast("AVX512") and not policy.jit_kernels_fast("AVX2")
    with pytest.warns(cnnkit.PerformanceWarning, match=r"jit_compile=True on this CPU .* gains "
                      r"nothing over eager PyTorch: .*; use jit_compile=False$"):
        policy.check_flags("cpu", "fp32", True, capability="AVX2")
    assert policy.plan("cpu", jit_compile=True).jit_kernels  # honoured


def test_compile_warns_about_slow_bf16_once(fresh, monkeypatch):
    monkeypatch.setattr(measure, "_MEASURED", {"m": EMULATED})
    def model():
        return cnnkit.Model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)),
                            input_shape=(2, 2, 1))
    with pytest.warns(cnnkit.PerformanceWarning, match="precision='bf16'"):
        first = model().compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                                device="cpu", precision="bf16")
    assert first.precision == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error", cnnkit.PerformanceWarning)
        model().compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cpu",
                        precision="bf16")


# -- the cache --------------------------------------------------------------------------------
def test_measure_times_once_then_reads_the_cache(fresh, monkeypatch):
    m = measure.measure()
    for key in ("fp32_matmul_gflops", "bf16_matmul_gflops", "fp32_conv_gflops", "bf16_conv_gflops"):
        assert getattr(m, key) > 0
    path = measure.cache_path()
    assert path.parent == fresh / "perf"
    saved = json.loads(path.read_text())
    assert saved["cpu"] == measure.cpu_name() and saved["torch"] == torch.__version__
    monkeypatch.setattr(measure, "_MEASURED", {})  # a new process
    monkeypatch.setattr(measure, "_run", lambda: pytest.fail("measured although cached"))
    assert measure.measure() == m


def _saved(**changes) -> str:
    return json.dumps({**NATIVE.as_dict(), "cpu": measure.cpu_name(), **changes})


@pytest.mark.parametrize("text, why", [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (_saved(format=99), "format 99"),
    (_saved(cpu="Intel Xeon 8480+, AVX512"), "measured on 'Intel Xeon 8480+, AVX512'"),
    (_saved(torch="1.0"), "with torch '1.0'"),
    (_saved(bf16_matmul_gflops="os.system('x')"), "bf16_matmul_gflops \"os.system('x')\" is not"),
    (_saved(fp32_conv_gflops=-3.0), "fp32_conv_gflops -3.0 is not a finite positive"),
    (_saved(bf16_conv_gflops=float("nan")), "bf16_conv_gflops nan"),
    (_saved(fp32_matmul_gflops=True), "fp32_matmul_gflops True"),
    (_saved(threads=0), "threads 0"),
], ids=["not-json", "a-list", "format", "other-cpu", "other-torch", "code-string", "negative",
        "nan", "bool", "threads"])
def test_a_bad_cache_is_ignored_with_one_line_and_measured_again(fresh, monkeypatch, text, why):
    path = measure.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(text)
    again = measure.Measurement(**{**NATIVE.__dict__, "cpu": measure.cpu_name()})
    monkeypatch.setattr(measure, "_run", lambda: again)
    with pytest.warns(RuntimeWarning) as caught:
        assert measure.measure() == again
    assert len(caught) == 1
    line = str(caught[0].message)
    assert "\n" not in line and line.startswith(f"cnnkit: ignoring the CPU speed cache {path}: ")
    assert why in line and line.endswith("measuring this CPU again (~0.1 s)")
    assert json.loads(path.read_text()) == again.as_dict()  # rewritten, valid


def test_a_near_verdict_is_measured_twice_keeping_the_better_figures(fresh, monkeypatch):
    runs = iter([NOISE, NATIVE])
    monkeypatch.setattr(measure, "_run", lambda: next(runs))
    m = measure.measure()
    assert m.bf16_matmul_gflops == NATIVE.bf16_matmul_gflops  # the second, better figure
    assert m.fp32_matmul_gflops == NATIVE.fp32_matmul_gflops  # max(100, 187)


def test_cache_off_neither_reads_nor_writes(fresh, monkeypatch):
    monkeypatch.setenv("CNNKIT_PERF_CACHE", "off")
    monkeypatch.setattr(measure, "_run", lambda: NATIVE)
    assert measure.measure() == NATIVE
    assert not (fresh / "perf").exists()


def test_env_json_records_the_speed_settings_and_the_measurement(fresh, monkeypatch):
    from cnnkit.run.directory import environment
    monkeypatch.setattr(measure, "_MEASURED", {"m": NATIVE})
    speed = environment(seed=0, device="cpu")["speed"]
    assert speed["threads"] == torch.get_num_threads()
    assert speed["cpu_bf16_speedup"] == round(NATIVE.bf16_speedup, 2)
    json.dumps(speed)  # env.json can hold it


def test_jit_compile_auto_is_eager_as_on_keras_torch_backend():
    model = cnnkit.Model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)),
                         input_shape=(2, 2, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cpu",
                  jit_compile="auto")
    assert model.jit_compile is False
    assert policy.resolve_jit_compile(True) is True and policy.resolve_jit_compile(False) is False
    with pytest.raises(ValueError, match=r"^jit_compile must be True, False or 'auto', got 'yes'$"):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cpu",
                      jit_compile="yes")


def test_the_old_import_paths_are_the_speed_package_modules():
    import cnnkit.kernels
    import cnnkit.perf
    from cnnkit import speed
    from cnnkit.speed import fused_step, kernels, perf as speed_perf
    from cnnkit.train import optim
    assert cnnkit.perf is speed_perf and perf is speed_perf  # monkeypatching one patches both
    assert cnnkit.kernels is kernels
    assert optim.step_function is fused_step.step_function
    assert optim.clear_grads is fused_step.clear_grads
    from cnnkit.perf import fast_bf16_cpu
    assert fast_bf16_cpu is speed.perf.fast_bf16_cpu


@pytest.mark.slow  # a whole (tiny) cnnkit train run: ~10 s here
def test_cnnkit_train_prints_the_warning_as_one_line_and_trains_in_bf16(fresh, monkeypatch,
                                                                        tmp_path, capsys):
    from cnnkit.cli import main
    monkeypatch.setattr(measure, "_MEASURED", {"m": EMULATED})
    code = main(["train", "--limit", "128", "--model", "mnist-1conv", "--batch-size", "32",
                 "--verbose", "0", "--epochs", "1", "--no-report", "--device", "cpu",
                 "--precision", "bf16", "--output", str(tmp_path / "runs"), "--name", "slow"])
    assert code == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "precision='bf16'" in ln]
    assert len(lines) == 1 and lines[0].startswith("cnnkit: warning: precision='bf16' on this CPU")
    config = json.loads((tmp_path / "runs" / "slow" / "config.json").read_text())
    assert config["precision"] == "bf16"  # honoured


def test_python_m_cnnkit_speed_shows_the_measurement_and_decisions(fresh, monkeypatch, capsys):
    from cnnkit.speed.__main__ import main
    monkeypatch.setattr(measure, "_MEASURED", {"m": EMULATED})
    assert main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["measurement"]["bf16_matmul_gflops"] == 0.8
    assert out["decisions"]["recipes_cpu_precision"] == "fp32"
    assert out["decisions"]["recipes_cpu_amx_fields"] is False
    assert out["cache"] == str(measure.cache_path())
    assert main([]) == 0
    text = capsys.readouterr().out
    assert "bf16 speedup 0.01x" in text and "recipes' CPU precision: fp32" in text
    assert "cpu_amx fields (bf16 on matrix units, >= 3.0x fp32): no" in text
    monkeypatch.setattr(measure, "_run", lambda: NATIVE)
    assert main(["--refresh", "--json"]) == 0  # times again (here: the injected figures)
    assert json.loads(capsys.readouterr().out)["decisions"]["recipes_cpu_precision"] == "bf16"


def test_an_op_that_cannot_run_counts_as_slow_and_the_figures_stay_valid(fresh, monkeypatch):
    real_conv = measure.F.conv2d

    def conv2d(x, w, **kwargs):
        if x.dtype == torch.bfloat16:
            raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'BFloat16'")
        return real_conv(x, w, **kwargs)

    monkeypatch.setattr(measure.F, "conv2d", conv2d)
    m = measure.measure()
    assert 0 < m.bf16_conv_gflops < 1e-3 < m.fp32_conv_gflops and m.threads == 1
    assert not policy.bf16_is_fast(m)
    monkeypatch.setattr(measure, "_MEASURED", {})
    assert measure.measure() == m  # the tiny figure survives the cache (not rounded to 0)
