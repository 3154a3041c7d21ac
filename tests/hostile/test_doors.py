"""The other doors: custom model code, secrets from the environment, strict JSON, safe names."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from loguru import logger
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.cli.render import print_json
from llenergymeasure.config.models import ExperimentConfig, ModelConfig
from llenergymeasure.exceptions import ModelLoadError
from llenergymeasure.files import json_bytes, safe_name
from llenergymeasure.measurement.harness import default_experiment_id
from llenergymeasure.measurement.models.custom_code import refuse_custom_code
from llenergymeasure.redaction import REDACTED, install_log_redaction, secret_values

TOKEN = "hf_plantedSECRETtoken0123456789"
SECRETS = {
    "HF_TOKEN": TOKEN,
    "AWS_SECRET_ACCESS_KEY": "aws/planted+SECRET/key0123",
    "MY_SERVICE_API_KEY": "sk-planted-SECRET-api-key",
    "DB_PASSWORD": 'pl"anted\\SECRET pass',
}
RUN_YAML = """\
model: {model}
fp_precision: float32
max_output_tokens: 4
dataset: {{num_prompts: 2}}
warmup: {{enabled: false}}
baseline: {{enabled: false}}
energy: {{source: estimate}}
"""


@pytest.fixture
def custom_code_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The built-in model's files plus a ``modeling_*.py`` of its own."""
    directory = tmp_path / "custom-model"
    shutil.copytree(tiny_model_dir, directory)
    (directory / "llem-builtin.json").unlink()
    (directory / "modeling_planted.py").write_text("raise SystemExit('this code ran')\n")
    return directory


def test_a_model_directory_with_code_is_refused_unless_trusted(custom_code_model: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"modeling_planted\.py") as info:
        refuse_custom_code(ModelConfig(name=str(custom_code_model)), str(custom_code_model))
    assert "trust_remote_code: true" in (info.value.fix or "")
    refuse_custom_code(
        ModelConfig(name=str(custom_code_model), trust_remote_code=True), str(custom_code_model)
    )
    (custom_code_model / "modeling_planted.py").unlink()
    config = json.loads((custom_code_model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_planted.Planted"}
    (custom_code_model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"auto_map in config\.json"):
        refuse_custom_code(ModelConfig(name=str(custom_code_model)), str(custom_code_model))


def test_llem_run_refuses_a_custom_code_directory_before_loading_it(
    offline_model_cache: Path, custom_code_model: Path, tmp_path: Path
) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text(RUN_YAML.format(model=custom_code_model))
    result = CliRunner().invoke(app, ["run", str(config), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "holds code that loading it could run (modeling_planted.py)" in result.stderr
    assert not list((tmp_path / "out").glob("*/result.json"))


def test_no_planted_secret_reaches_results_logs_or_output(
    offline_model_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", TOKEN)  # a value the snapshot does capture
    config = tmp_path / "run.yaml"
    config.write_text(RUN_YAML.format(model="builtin:tiny-gpt2"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["-v", "run", str(config), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    written = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    assert any(p.name == "result.json" for p in written)
    for secret in SECRETS.values():
        for text in (result.stdout, result.stderr, *written.values()):
            assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert json.loads(result.stdout)["environment"]["cuda_visible_devices"] == REDACTED


def test_secrets_are_redacted_in_json_files_and_log_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {"SHORT_TOKEN": "abc", "HOME_DIR_PATH": TOKEN + "x"}  # too short; not a secret's name
    assert set(secret_values({**SECRETS, **extra})) == set(SECRETS.values())
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    data = {"error": f"401 for {TOKEN}", SECRETS["DB_PASSWORD"]: [1.5, "ok"], "n": 12345678}
    written = json.loads(json_bytes(data))
    assert written == {"error": f"401 for {REDACTED}", REDACTED: [1.5, "ok"], "n": 12345678}
    install_log_redaction()
    sink = io.StringIO()
    logger.remove()
    logger.add(sink, format="{message}")
    logger.enable("llenergymeasure")
    logger.warning("token {} refused", TOKEN)
    assert sink.getvalue() == f"token {REDACTED} refused\n"


def test_json_output_is_strict_and_results_refuse_non_finite(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_json({"a": float("nan"), "b": [float("inf"), 1.0], "c": (float("-inf"),)})
    text = capsys.readouterr().out
    assert json.loads(text, parse_constant=pytest.fail) == {
        "a": None,
        "b": [None, 1.0],
        "c": [None],
    }
    with pytest.raises(ValueError):
        json_bytes({"x": float("nan")})  # never reached: configs hold finite floats only


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "a/b\\c", "..", "ö" * 300, "x" * 1000, "名前" * 100, "."]
)
def test_names_from_configs_become_short_safe_directory_names(name: str) -> None:
    safe = safe_name(name)
    assert safe.isascii() and len(safe) <= 150 and "/" not in safe and "\\" not in safe
    assert not safe.startswith(".") and safe not in ("", ".", "..")
    config = ExperimentConfig.model_validate({"model": "builtin:tiny-gpt2", "name": name})
    exp_id = default_experiment_id(config, "f" * 64)
    assert len(exp_id.encode()) <= 255 and exp_id.isascii() and "/" not in exp_id
