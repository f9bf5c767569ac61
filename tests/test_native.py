"""Where the C++ library is built from: copies of its sources named by their content, so checkouts
and venvs sharing torch's extension cache never rebuild each other's build (native._staged_sources)."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

from torch.utils import cpp_extension

from memristor_mat import native

FLAGS = ["-O3", "-ffp-contract=off"]


def checkout(root: Path) -> tuple[Path, ...]:
    """A copy of the package's C++ sources at another path (another clone)."""
    root.mkdir(parents=True)
    return tuple(Path(shutil.copy(source, root / source.name)) for source in native.SOURCES)


def test_two_checkouts_of_the_same_sources_build_from_the_same_files(tmp_path, monkeypatch):
    build = tmp_path / "cache" / "build"
    monkeypatch.setattr(native, "SOURCES", checkout(tmp_path / "one"))
    digest, staged = native._digest(FLAGS), native._staged_sources(build)
    assert [p.parent for p in staged] == [build / "csrc"] * len(staged)
    assert [p.read_bytes() for p in staged] == [s.read_bytes() for s in native.SOURCES]
    stamps = [p.stat().st_mtime_ns for p in staged]

    monkeypatch.setattr(native, "SOURCES", checkout(tmp_path / "two"))
    assert native._digest(FLAGS) == digest  # the same name, so the same build directory
    assert native._staged_sources(build) == staged
    # untouched: a newer file would make ninja recompile what is already built
    assert [p.stat().st_mtime_ns for p in staged] == stamps
    assert sorted(p.name for p in (build / "csrc").iterdir()) == sorted(p.name for p in staged)  # no leftovers


def test_other_sources_flags_or_torch_name_another_build(tmp_path, monkeypatch):
    sources = checkout(tmp_path / "one")
    monkeypatch.setattr(native, "SOURCES", sources)
    digest = native._digest(FLAGS)
    assert native._digest([*FLAGS, "-mavx2"]) != digest
    monkeypatch.setattr(native.torch, "__version__", "0.0.0")
    assert native._digest(FLAGS) != digest
    monkeypatch.undo()
    monkeypatch.setattr(native, "SOURCES", sources)
    sources[0].write_bytes(sources[0].read_bytes() + b"\n// edited\n")
    assert native._digest(FLAGS) != digest
    # a file's name counts, not only the bytes: two files swapping contents are another library
    swapped = checkout(tmp_path / "two")
    swapped[0].write_bytes(native.SOURCES[1].read_bytes())
    swapped[1].write_bytes(checkout(tmp_path / "three")[0].read_bytes())
    monkeypatch.setattr(native, "SOURCES", swapped)
    assert native._digest(FLAGS) != digest


def test_a_staged_copy_edited_by_hand_is_put_back(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "SOURCES", checkout(tmp_path / "one"))
    staged = native._staged_sources(tmp_path / "build")
    staged[0].write_text("broken")
    assert native._staged_sources(tmp_path / "build")[0].read_bytes() == native.SOURCES[0].read_bytes()


def test_a_file_system_without_hard_links_gets_whole_copies_by_renaming(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "SOURCES", checkout(tmp_path / "one"))

    def no_links(source, target):
        raise PermissionError("hard links are not supported here")

    monkeypatch.setattr(native.os, "link", no_links)
    staged = native._staged_sources(tmp_path / "build")
    assert [p.read_bytes() for p in staged] == [s.read_bytes() for s in native.SOURCES]
    assert sorted(p.name for p in (tmp_path / "build" / "csrc").iterdir()) == sorted(p.name for p in staged)


def _stage(sources: tuple[Path, ...], build: Path) -> list[bytes]:
    native.SOURCES = sources
    return [p.read_bytes() for p in native._staged_sources(build)]


def test_processes_staging_at_once_all_see_whole_files(tmp_path):
    sources, build = checkout(tmp_path / "one"), tmp_path / "build"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        seen = pool.starmap(_stage, [(sources, build)] * 8)
    assert all(files == [s.read_bytes() for s in sources] for files in seen)
    assert sorted(p.name for p in (build / "csrc").iterdir()) == sorted(s.name for s in sources)


def test_the_library_is_built_from_the_staged_copies(monkeypatch):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "cpp")
    compiled = native.module()  # builds (or raises: the test then fails with the compiler's reason)
    build = Path(cpp_extension._get_build_directory(compiled.name, False))
    ninja = (build / "build.ninja").read_text()
    for source in native.SOURCES:
        assert str(build / "csrc" / source.name) in ninja
        assert str(source) not in ninja
    assert compiled.name.startswith("memristor_mat_native_")


def test_a_failed_build_is_named_by_the_compilers_first_error():
    # torch's message: the extension, then ninja's output (its command lines, the compiler's messages)
    compile_failure = RuntimeError(
        "Error building extension 'memristor_mat_native_avx512_0123456789ab': [1/5] c++ -MMD -MF adam.o.d -O3 -c "
        "/cache/csrc/adam.cpp -o adam.o\nFAILED: adam.o\nc++ -MMD -MF adam.o.d -O3 -c /cache/csrc/adam.cpp\n"
        "/cache/csrc/adam.cpp:65:30: error: 'empty_like' is not a member of 'at'\n"
        "/cache/csrc/adam.cpp:70:1: error: expected ';'\nninja: build stopped: subcommand failed.\n")
    assert native._reason(compile_failure) == ("RuntimeError: Error building extension "
                                                "'memristor_mat_native_avx512_0123456789ab': /cache/csrc/adam.cpp:65:30: "
                                                "error: 'empty_like' is not a member of 'at'")
    assert native._reason(FileNotFoundError("ninja: not found\nsecond line")) == "FileNotFoundError: ninja: not found"
    assert native._reason(OSError()) == "OSError: "
