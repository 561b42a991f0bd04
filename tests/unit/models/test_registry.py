"""The registry: builtin entries, user entries on disk, availability."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from pixsight.core.errors import ConfigError, UnknownModelError
from pixsight.models import registry as registry_mod
from pixsight.models.registry import Registry, availability, describe, get_registry, registry_path, size_bytes
from pixsight.models.spec import ModelSpec, WeightsSource

ZOO = {
    "pixsight.models.zoo.imagenet": "classify",
    "pixsight.models.zoo.ocr": "ocr",
    "pixsight.models.zoo.faces": "faces",
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _user_spec(name: str = "mine", path: str = "/nonexistent/mine.onnx") -> ModelSpec:
    return ModelSpec(name=name, task="classify", backend="onnx", version="1",
                     weights=(WeightsSource(kind="path", location=path),), license="MIT", origin="me")


def test_registry_reads_every_zoo_module():
    """The built-in models are the three zoo modules; dropping one from the registry (or the
    package) would silently remove a task's default model."""
    assert set(registry_mod.ZOO_MODULES) == set(ZOO)


@pytest.mark.parametrize("module, task", sorted(ZOO.items()))
def test_builtin_entries_of_each_zoo_module_are_listed(home, module, task):
    specs = importlib.import_module(module).SPECS  # a missing module is an ImportError: a failure
    reg = get_registry()
    assert specs and all(reg.get(s.name) == s for s in specs)
    assert reg.default_for(task).task == task
    assert all(s.license and s.license != "unknown" for s in specs), "every builtin entry records its licence"


def test_missing_zoo_module_contributes_nothing(home, monkeypatch):
    monkeypatch.setattr(registry_mod, "ZOO_MODULES", ("pixsight.models.zoo.does_not_exist",))
    assert Registry().list() == []


def test_unknown_name_lists_close_matches(home):
    reg = Registry(builtin=[_user_spec("efficientnet-lite0"), _user_spec("dlib-faces")])
    with pytest.raises(UnknownModelError) as info:
        reg.get("efficientnet-lite")
    assert "efficientnet-lite0" in str(info.value) and "dlib-faces" not in str(info.value)
    with pytest.raises(UnknownModelError, match="pixsight models list"):
        reg.get("zzzz")


def test_user_entry_persists_across_instances(home):
    Registry(builtin=[]).add(_user_spec())
    again = Registry(builtin=[])
    spec = again.get("mine")
    assert spec.user and spec.license == "MIT" and spec.weights[0].location == "/nonexistent/mine.onnx"
    assert json.loads(registry_path().read_text())["models"][0]["name"] == "mine"
    assert [p.name for p in registry_path().parent.iterdir() if p.name.endswith(".tmp")] == []
    again.remove("mine")
    assert "mine" not in Registry(builtin=[])


def test_add_refuses_builtin_and_duplicate_names(home):
    reg = Registry(builtin=[_user_spec("builtin-one")])
    with pytest.raises(ConfigError, match="builtin"):
        reg.add(_user_spec("builtin-one"))
    reg.add(_user_spec())
    with pytest.raises(ConfigError, match="already exists"):
        reg.add(_user_spec())
    with pytest.raises(ConfigError, match="cannot be removed"):
        reg.remove("builtin-one")
    with pytest.raises(UnknownModelError):
        reg.remove("nope")


@pytest.mark.parametrize("content", ["{not json", '{"models": "x"}', '{"models": [{"name": "a"}]}', "[]"])
def test_corrupt_registry_file_is_a_clear_error(home, content):
    registry_path().parent.mkdir(parents=True)
    registry_path().write_text(content)
    with pytest.raises(ConfigError) as info:
        Registry(builtin=[])
    assert str(registry_path()) in str(info.value) and "corrupt" in str(info.value)


def test_availability_of_a_path_model_follows_the_file(home, tmp_path):
    weights = tmp_path / "m.onnx"
    spec = _user_spec(path=str(weights))
    missing = availability(spec)
    assert not missing.available and "pixsight models add" in missing.hint
    assert size_bytes(spec) is None
    weights.write_bytes(b"x" * 1234)
    assert availability(spec).available
    assert size_bytes(spec) == 1234


def test_availability_reports_missing_module_executable_and_url(home):
    mod = ModelSpec(name="a", task="ocr", backend="rapidocr", version="1", requires_modules=("no_such_module_xyz",),
                    install_hint="pip install no-such")
    assert availability(mod) == registry_mod.Availability(False, "Python module(s) not installed: no_such_module_xyz",
                                                          "pip install no-such")
    exe = ModelSpec(name="b", task="ocr", backend="tesseract", version="1", requires_executables=("no-such-exe-xyz",))
    assert "no-such-exe-xyz" in availability(exe).reason
    url = ModelSpec(name="c", task="classify", backend="onnx", version="1",
                    weights=(WeightsSource(kind="url", location="https://example.org/c.onnx", sha256="a" * 64,
                                           size_bytes=99),))
    assert availability(url).hint == "run: pixsight models pull c"
    assert describe(url)["size_bytes"] == 99


def test_export_on_first_use_needs_the_package(home):
    spec = ModelSpec(name="e", task="classify", backend="onnx", version="1",
                     weights=(WeightsSource(kind="cache", location="e.onnx"),),
                     options={"export_from": "no-such-dist-xyz:w.pth"})
    a = availability(spec)
    assert not a.available and "no-such-dist-xyz" in a.reason and a.hint == "pip install no-such-dist-xyz"


def test_listing_never_imports_heavy_packages(home):
    code = (
        "import sys\n"
        "from pixsight.models.registry import describe, get_registry\n"
        "rows = [describe(s) for s in get_registry().list()]\n"
        "print(sorted(m for m in ('torch', 'dlib', 'rapidocr', 'onnx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
