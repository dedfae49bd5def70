"""A command's output appears whole or not at all (``outputs.safe_writes.staged_outputs``): it is
written into hidden stand-in folders and moved into place once the command has finished, so an
interrupted command leaves every folder as it was, and a replaced folder holds only what the
new call wrote. The interrupts are aimed at events (a batch written, the t-SNE begun), never at
delays."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    copy_run,
    reference_run,
    run_python,
    single_thread,
)

from diffusiontools import cli
from diffusiontools.evaluation import set_scoring
from diffusiontools.outputs import safe_writes
from diffusiontools.outputs.safe_writes import staged_outputs
from diffusiontools.training import sample_files


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` (hidden ones included) -> its bytes (None for a folder)."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(Path(folder).rglob("*"))
    }


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


# --- the helper ------------------------------------------------------------------------------


def test_a_new_folder_appears_with_its_parents_only_once_finished(tmp_path):
    final = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt), staged_outputs() as staging:
        (staging.folder(final) / "x.txt").write_text("new")
        assert names(tmp_path) == [f".a.partial-{os.getpid()}"]  # hidden, beside the first new
        raise KeyboardInterrupt
    assert names(tmp_path) == []
    with staged_outputs() as staging:
        (staging.folder(final) / "x.txt").write_text("new")
        (staging.file(tmp_path / "a" / "y.txt")).write_text("beside")
    assert tree(tmp_path) == {"a": None, "a/b": None, "a/b/x.txt": b"new", "a/y.txt": b"beside"}


def test_a_whole_folder_is_replaced_by_what_was_written_or_kept_as_it_was(tmp_path):
    own = tmp_path / "samples"
    own.mkdir()
    (own / "old.npz").write_text("old")
    (own / "grid.png").write_text("old grid")
    with pytest.raises(RuntimeError), staged_outputs() as staging:
        (staging.folder(own, whole=True) / "grid.png").write_text("new grid")
        raise RuntimeError("the drawing failed")
    assert tree(tmp_path) == {
        "samples": None,
        "samples/grid.png": b"old grid",
        "samples/old.npz": b"old",
    }
    with staged_outputs() as staging:
        (staging.folder(own, whole=True) / "grid.png").write_text("new grid")
    assert tree(tmp_path) == {"samples": None, "samples/grid.png": b"new grid"}


def test_a_shared_folder_takes_the_new_files_loses_the_replaced_and_keeps_the_rest(tmp_path):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    for name in ("mine.txt", "earlier.png", "figures/mine.png", "figures/earlier_x.png"):
        (out / name).write_text("old")
    replaced = [out / "earlier.png", out / "figures" / "earlier_x.png"]
    with pytest.raises(KeyboardInterrupt), staged_outputs() as staging:
        (staging.folder(out, replaces=replaced) / "new.png").write_text("new")
        raise KeyboardInterrupt
    before = {n: b"old" for n in ("earlier.png", "figures/earlier_x.png", "figures/mine.png")}
    assert tree(out) == {"figures": None, **before, "mine.txt": b"old"}
    with staged_outputs() as staging:
        work = staging.folder(out, replaces=replaced)
        (work / "new.png").write_text("new")
        (staging.folder(out / "figures") / "new_x.png").write_text("new")
    assert tree(out) == {
        "figures": None,
        "figures/mine.png": b"old",
        "figures/new_x.png": b"new",
        "mine.txt": b"old",
        "new.png": b"new",
    }
    assert names(tmp_path) == ["out"]


@pytest.mark.parametrize(
    "name", ["a\nb", "\n.png", "tab\there", "esc\x1b[31m", "line\u2028sep", "\u202egnp.exe"]
)
def test_an_output_name_with_a_control_character_is_refused_before_anything_is_made(
    name, tmp_path, monkeypatch
):
    """sample --out $'\\n.png' wrote a file whose name began with a newline; evaluate, pages
    and reconstruct a folder whose name was two lines."""
    monkeypatch.chdir(tmp_path)
    shown = repr(name)
    with pytest.raises(safe_writes.UserError) as refused:
        safe_writes.check_output_file(name, "out", "the grid")
    assert str(refused.value).startswith(f"out={shown} holds the non-printing character ")
    with pytest.raises(safe_writes.UserError, match="holds the non-printing character"):
        safe_writes.check_output_folder(name, "out", "the run")
    with pytest.raises(safe_writes.UserError, match="name the output folder without one"):
        with staged_outputs() as staging:
            staging.folder(tmp_path / name)
    assert names(tmp_path) == []


def test_a_folder_that_exists_with_such_a_name_is_written_into(tmp_path):
    """Its name is the user's: only names the command would create are checked (sample's grid
    went into RUN/samples of a run folder named so, and was refused as '--out')."""
    folder = tmp_path / "run\nnl"
    folder.mkdir()
    assert safe_writes.check_output_file(folder / "grid.png", "out") == folder / "grid.png"
    safe_writes.check_output_folder(folder / "samples", "out", "the samples")
    with pytest.raises(safe_writes.UserError, match=r"holds the non-printing character '\\t'"):
        safe_writes.check_output_file(folder / "a\tb.png", "out")


def test_a_command_refuses_such_a_name_in_one_line(tmp_path, capsys):
    run = reference_run()
    capsys.readouterr()  # the reference run's training, on first use
    grid = str(tmp_path / "\n.png")
    argv = ["sample", str(run), "-n", "2", "--out", grid, "--device", "cpu"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: --out {grid!r} holds the non-printing character '\\n'; name a file for the grid "
        "without one\n"
    )
    assert names(tmp_path) == []


def test_a_second_signal_while_a_stopped_command_cleans_up_leaves_no_stand_in(
    tmp_path, monkeypatch
):
    """Ctrl-C twice in quick succession: the second arrived while the first's clean-up removed
    the stand-in, interrupted it and left .NAME.partial-PID behind."""
    discard = safe_writes.Staging.discard

    def interrupted_discard(staging):
        os.kill(os.getpid(), signal.SIGINT)  # the event: the clean-up has begun
        discard(staging)

    monkeypatch.setattr(safe_writes.Staging, "discard", interrupted_discard)
    with pytest.raises(KeyboardInterrupt, match="the first"):
        with staged_outputs() as staging:
            (staging.folder(tmp_path / "out") / "a.txt").write_text("half")
            raise KeyboardInterrupt("the first")
    assert names(tmp_path) == []


def test_a_stop_signal_during_torch_s_import_stops_the_command_cleanly(tmp_path):
    """SIGTERM while the CLI imported torch (numpy below it) was swallowed by the import, or
    left numpy half-imported (a matplotlib ValueError, an abort)."""
    code = f"""
import importlib.abc, os, signal, sys
from diffusiontools import cli

class SignalOnNumpy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":  # the event: torch's import has reached numpy's
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGTERM)
        return None

sys.meta_path.insert(0, SignalOnNumpy())
code = cli.main(["sample", {str(tmp_path / "no-run")!r}])
print(code, "numpy" in sys.modules and hasattr(sys.modules["numpy"], "ndarray"))
"""
    done = run_python(code, cwd=tmp_path)
    assert done.stdout.split() == ["143", "True"], done.stderr[-2000:]
    assert done.stderr.splitlines()[-1] == "stopped by SIGTERM"
    assert names(tmp_path) == []


def test_ctrl_c_while_the_files_are_moved_in_waits_until_all_are(tmp_path, monkeypatch):
    """SIGINT sent as the first folder is moved into place: the move finishes (both folders),
    then the interrupt is raised."""
    move_into = safe_writes._move_into

    def interrupted_while_moving(source, folder):
        os.kill(os.getpid(), signal.SIGINT)  # the event: the moving has begun
        move_into(source, folder)

    monkeypatch.setattr(safe_writes, "_move_into", interrupted_while_moving)
    # Python's own Ctrl-C handler, whatever this process inherited (a shell's background job
    # starts with SIGINT ignored, and an ignored signal rightly stays ignored after the move).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        (tmp_path / "shared").mkdir()
        with pytest.raises(KeyboardInterrupt), staged_outputs() as staging:
            staging.file(tmp_path / "shared" / "a.txt").write_text("a")
            staging.file(tmp_path / "new" / "b.txt").write_text("b")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert tree(tmp_path) == {"new": None, "new/b.txt": b"b", "shared": None, "shared/a.txt": b"a"}


# --- the commands ----------------------------------------------------------------------------


def terminate_after_one_batch(monkeypatch) -> None:
    """SIGTERM as soon as the first batch of samples has gone into the NPZ."""
    draw = sample_files.generate_batches

    def terminated_after_one_batch(*args, **kwargs):
        batches = draw(*args, **kwargs)
        yield next(batches)
        os.kill(os.getpid(), signal.SIGTERM)  # the event: one batch written
        yield from batches

    monkeypatch.setattr(sample_files, "generate_batches", terminated_after_one_batch)


def test_sigterm_during_sample_leaves_no_folder_behind(tmp_path, monkeypatch, capsys):
    """Item 1: ``sample RUN --out DIR/grid.png`` stopped by SIGTERM: exit 143, no DIR, and a
    line that says so (it exited without a word)."""
    terminate_after_one_batch(monkeypatch)
    out = tmp_path / "new" / "grid.png"
    argv = ["sample", str(reference_run()), "-n", "2", "--out", str(out), "--device", "cpu"]
    capsys.readouterr()  # the reference run's training, on first use
    assert cli.main(argv) == 143
    assert tree(tmp_path) == {}
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert "stopped by SIGTERM" in lines  # a line of its own


def test_sigterm_during_sample_leaves_the_run_s_samples_as_they_were(tmp_path, monkeypatch):
    """SIGTERM once the NPZ and the grid are written, as the trajectory is drawn: RUN/samples
    keeps the earlier call's three files, not a new grid and NPZ beside an old trajectory."""
    run = copy_run(reference_run(), tmp_path / "run")
    argv = ["sample", str(run), "-n", "2", "--trajectory", "--device", "cpu"]
    assert cli.main(argv) == 0
    before = tree(run)
    draw = sample_files.trajectory

    def terminated_at_the_trajectory(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the event: NPZ and grid written
        return draw(*args, **kwargs)

    monkeypatch.setattr(sample_files, "trajectory", terminated_at_the_trajectory)
    assert cli.main([*argv[:3], "3", *argv[4:]]) == 143
    assert tree(run) == before


def test_the_run_s_samples_folder_holds_one_call_s_files(tmp_path):
    """Item 4: ``sample RUN --npz elsewhere.npz`` replaces RUN/samples as a whole: the grid of
    this call alone, no samples.npz of an earlier call beside it."""
    run = copy_run(reference_run(), tmp_path / "run")
    base = ["sample", str(run), "-n", "2", "--device", "cpu"]
    assert cli.main([*base, "--trajectory"]) == 0
    assert names(run / "samples") == ["sample_grid.png", "samples.npz", "trajectory.png"]
    assert cli.main([*base, "--npz", str(tmp_path / "elsewhere.npz")]) == 0
    assert names(run / "samples") == ["sample_grid.png"]
    assert names(tmp_path) == ["elsewhere.npz", "run"]
    assert ".samples.partial" not in " ".join(names(run))


def test_an_interrupted_evaluate_overwrite_leaves_the_earlier_evaluation(tmp_path, monkeypatch):
    """Item 2: ``evaluate --overwrite`` interrupted once its samples are drawn (the t-SNE
    begins): the earlier evaluation stays as it was, no new samples beside its metrics."""
    out = tmp_path / "evaluation"
    argv = ["evaluate", str(reference_run()), "--n-samples", "10", "--tsne-reference", "50",
            "--test-reference", "50", "--n-boot", "5", "--n-boot-set", "3", "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    with threadpool_limits(1):
        assert cli.main([*argv, "--label", "first"]) == 0
    (out / "notes.txt").write_text("the user's own")
    before = tree(out)
    assert sorted(before) == [
        "class_histogram_first.png",
        "memorisation_first.png",
        "metrics.json",
        "metrics.md",
        "notes.txt",
        "samples_first.npz",
        "samples_first.png",
        "tsne_first.png",
        "tsne_test_labels.png",
    ]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the event: every sample drawn and saved, the t-SNE next

    monkeypatch.setattr(set_scoring, "joint_tsne", interrupted)
    with threadpool_limits(1):
        assert cli.main([*argv, "--label", "second", "--seed", "1", "--overwrite"]) == 130
    assert tree(out) == before
    assert names(tmp_path) == ["evaluation"]


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cold")
    ini = folder / "cold.ini"
    ini.write_text("[data]\nsubset = 128\n[model]\nn_hidden = 4, 4\n[diffusion]\nkind = cold\n"
                   "degradation = pixel_swap\nT = 5\n[training]\nepochs = 1\nmax_steps = 2\n"
                   "batch_size = 32\nval_batches = 1\ndevice = cpu\n")  # fmt: skip
    assert cli.main(["train", str(ini), "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_reconstruct_names_its_out_folder_before_reading_the_data(cold_run, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("the user's")
    capsys.readouterr()
    assert cli.main(["reconstruct", str(cold_run), "--out", str(tmp_path / "file.txt")]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path / 'file.txt'} is a file; name a folder for the study\n"
    )
    assert (tmp_path / "file.txt").read_text() == "the user's"
    # evaluate --reconstruction named OUT/reconstruction_<run>, a path the user never typed
    argv = ["evaluate", str(cold_run), "--reconstruction", "--out", str(tmp_path / "file.txt")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path / 'file.txt'} is a file; name a folder for the reconstruction "
        "studies\n"
    )


def test_reconstruct_overwrite_with_fewer_samplers_keeps_no_earlier_figure(cold_run, tmp_path):
    """Item 3: the earlier study's triplets_improved.png goes with it, in --out (the user's
    file stays) and in the run's own folder (replaced as a whole)."""
    run = copy_run(cold_run, tmp_path / "run")
    out = tmp_path / "study"
    base = ["reconstruct", str(run), "-n", "4", "--device", "cpu"]
    for argv in ([*base, "--out", str(out)], base):
        assert cli.main(argv) == 0
    (out / "notes.txt").write_text("the user's own")
    both = [
        "reconstruction.json",
        "reconstruction.md",
        "triplets_improved.png",
        "triplets_naive.png",
    ]
    assert names(out) == ["notes.txt", *both]
    assert names(run / "reconstruction") == both
    fewer = [*base, "--samplers", "naive"]
    assert cli.main([*fewer, "--out", str(out), "--overwrite"]) == 0
    assert names(out) == [
        "notes.txt",
        "reconstruction.json",
        "reconstruction.md",
        "triplets_naive.png",
    ]
    assert cli.main(fewer) == 0
    assert names(run / "reconstruction") == [
        "reconstruction.json",
        "reconstruction.md",
        "triplets_naive.png",
    ]


def test_what_the_tool_writes_into_an_export_never_blocks_the_next_export(tmp_path):
    """Item 5: ``sample EXPORT`` writes EXPORT/samples, and a killed command may leave a
    stand-in; the next ``export RUN`` still replaces the export, and them with it (they came
    from the weights replaced)."""
    run = copy_run(reference_run(), tmp_path / "run")
    export = run / "exports" / "safetensors"
    assert cli.main(["export", str(run), "--format", "safetensors"]) == 0
    assert cli.main(["sample", str(export), "-n", "2", "--device", "cpu"]) == 0
    (export / f".samples.partial-{os.getpid() + 1}").mkdir()  # as a SIGKILL would leave it
    assert names(export) == [
        f".samples.partial-{os.getpid() + 1}",
        "diffusiontools.json",
        "model.safetensors",
        "samples",
    ]
    assert cli.main(["export", str(run), "--format", "safetensors", "--no-ema"]) == 0
    assert names(export) == ["diffusiontools.json", "model.safetensors"]
    assert names(run / "exports") == ["safetensors"]
