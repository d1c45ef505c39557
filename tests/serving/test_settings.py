"""Settings from the environment, and the data directory they point at."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from insightray.config import insightray_home
from insightray.errors import ConfigError
from insightray.serving.settings import ServeSettings


def test_home_follows_insightray_home_then_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIGHTRAY_HOME", "/srv/ir")
    assert insightray_home() == Path("/srv/ir")
    monkeypatch.delenv("INSIGHTRAY_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", "/data/xdg")
    assert insightray_home() == Path("/data/xdg/insightray")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert insightray_home() == Path.home() / ".local" / "share" / "insightray"


def test_from_env_reads_typed_variables_and_overrides_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INSIGHTRAY_HOME", str(tmp_path))
    monkeypatch.setenv("INSIGHTRAY_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("INSIGHTRAY_RATE_PER_S", "2.5")
    monkeypatch.setenv("INSIGHTRAY_DEIDENTIFY", "no")
    monkeypatch.setenv("INSIGHTRAY_BATCH_MAX_SIZE", "4")
    monkeypatch.setenv("INSIGHTRAY_RETRAIN_AGREEMENT", "0.65")
    settings = ServeSettings.from_env(batch_max_size=16)
    assert settings.retrain_agreement == 0.65 and settings.retrain_window == 50
    assert settings.home == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'insightray.db'}"
    assert settings.keys_dir == tmp_path / "keys"
    assert settings.store_dir == tmp_path / "store"
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.rate_per_s == 2.5
    assert settings.deidentify is False
    assert settings.batch_max_size == 16
    assert settings.inference_threads >= 1 and settings.torch_threads >= 1


def test_data_key_is_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INSIGHTRAY_DATA_KEY", "c2VjcmV0")
    settings = ServeSettings.from_env(home=tmp_path)
    assert settings.data_key == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INSIGHTRAY_RATE_BURST", "many"),
        ("INSIGHTRAY_PSEUDONYM_MAP", "maybe"),
        ("INSIGHTRAY_TOKEN_TTL_S", "0"),
        ("INSIGHTRAY_RETRAIN_WINDOW", "0"),
        ("INSIGHTRAY_RETRAIN_AGREEMENT", "1.5"),
        ("INSIGHTRAY_RETRAIN_AGREEMENT", "most"),
    ],
)
def test_bad_values_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        ServeSettings.from_env(home=tmp_path)


def test_unknown_override_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown settings"):
        ServeSettings.from_env(home=tmp_path, rate=3)


def test_ensure_dirs_creates_the_tree_with_private_keys(tmp_path: Path) -> None:
    settings = ServeSettings(home=tmp_path / "a" / "home")
    settings.ensure_dirs()
    assert settings.store_dir.is_dir()
    assert stat.S_IMODE(settings.keys_dir.stat().st_mode) == 0o700
    settings.ensure_dirs()  # idempotent
