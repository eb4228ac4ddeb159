"""Jobs never skip, duplicate or lose an item, and never destroy a user's file: each case as a user meets it,
through the installed `legato` (a subprocess) or the public API."""

import errno
import json
import os
import shutil
import stat
import subprocess

import pytest
import yaml

from legato.codec import write_audio
from legato.codec.testing import harmonic_notes
from legato.pipelines.job_spec import item_id
from legato.pipelines.manifest import MANIFEST, FolderBusy, OutputFolder, read_manifest

from .conftest import LEGATO, assert_clean_error, invoke, legato


def write(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(fields))
    return path


def music_job(tmp_path, items, **fields):
    fields = {"output": str(tmp_path / "out"), "formats": ["wav"], **fields}
    return write(tmp_path / "job.yaml", kind="music", model="music-tiny", items=items, **fields)


def ids_in(folder):
    return [row["id"] for row in read_manifest(folder)]


def test_inserting_an_item_makes_it_and_skips_the_others_by_what_they_are(tmp_path, cli_env):
    jig, waltz = {"prompt": "a jig", "seed": 0}, {"prompt": "a waltz", "seed": 1}
    spec = music_job(tmp_path, [jig, waltz])
    assert legato("batch", str(spec), env=cli_env).code == 0
    before = {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")}
    music_job(tmp_path, [{"prompt": "ragtime piano", "seed": 5}, jig, waltz])
    again = invoke("batch", str(spec), "--json", env=cli_env)
    assert again.code == 0, again.stderr
    ragtime = item_id("ragtime piano", 5, None)
    assert again.json()["written"] == [ragtime]
    assert sorted(again.json()["skipped"]) == sorted([item_id("a jig", 0, None), item_id("a waltz", 1, None)])
    assert sorted(ids_in(tmp_path / "out")) == sorted([ragtime, *again.json()["skipped"]])  # each once
    for name, data in before.items():
        if name.endswith(".wav"):
            assert (tmp_path / "out" / name).read_bytes() == data  # not written again
    # an item that keeps its id but asks for something else is refused, naming it, never skipped
    music_job(tmp_path, [{"prompt": "a jig on fiddle", "seed": 0, "id": ragtime}])
    refused = invoke("batch", str(spec), env=cli_env)
    assert_clean_error(refused, 2, f"item '{ragtime}'", "ragtime piano", "another id")


def test_a_second_run_on_a_folder_in_use_is_refused_and_touches_nothing(tmp_path, cli_env):
    spec = music_job(tmp_path, [{"prompt": "a jig", "seed": 0}])
    with OutputFolder(tmp_path / "out"):  # another run holds the folder, mid-write
        in_progress = tmp_path / "out" / ".a.wav.1234.part"
        in_progress.write_bytes(b"half a file")
        busy = legato("batch", str(spec), env=cli_env)
        assert_clean_error(busy, 3, "being written by another run", str(tmp_path / "out"))
        assert in_progress.read_bytes() == b"half a file"
        with pytest.raises(FolderBusy):  # in this process too
            OutputFolder(tmp_path / "out").__enter__()
    assert invoke("batch", str(spec), env=cli_env).code == 0  # once it is free
    assert not in_progress.exists()  # then a stray of a killed run is removed


def test_two_drivers_at_once_make_each_item_once(tmp_path, cli_env):
    spec = music_job(tmp_path, [{"prompt": f"a jig {i}", "seed": i} for i in range(6)], chunk=1)
    env = {**os.environ, **cli_env, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([str(LEGATO), "batch", str(spec), "--json"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes in ([0, 0], [0, 3]), outputs  # the second is refused, or starts after the first is done
    ids = ids_in(tmp_path / "out")
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 6


def test_a_torn_manifest_line_is_cut_back_and_its_item_made_again(tmp_path, cli_env, monkeypatch):
    spec = music_job(tmp_path, [{"prompt": "a jig", "seed": 0}, {"prompt": "a reel", "seed": 1}])
    assert legato("batch", str(spec), env=cli_env).code == 0
    manifest = tmp_path / "out" / MANIFEST
    lines = manifest.read_text().splitlines()
    manifest.write_text(lines[0] + "\n" + lines[1][:40])  # the disk filled while the last line was written
    again = invoke("batch", str(spec), "--json", env=cli_env)
    assert again.code == 0, again.stderr
    assert again.json()["written"] == [json.loads(lines[1])["id"]]
    assert manifest.read_text().count("\n") == 2
    assert [json.loads(line)["id"] for line in manifest.read_text().splitlines()] == ids_in(tmp_path / "out")
    # a line is written whole or not at all: a full disk part-way through leaves the manifest as it was
    before = manifest.read_bytes()
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:10]))
    with OutputFolder(tmp_path / "out") as out, pytest.raises(OSError, match=str(manifest)) as failure:
        out.append({"id": "x", "files": []})
    monkeypatch.undo()
    assert failure.value.errno == errno.ENOSPC
    assert manifest.read_bytes() == before


def test_a_resume_remakes_damaged_missing_and_newly_asked_files(tmp_path, cli_env):
    items = [{"prompt": "a jig", "seed": 0, "id": "jig"}, {"prompt": "a reel", "seed": 1, "id": "reel"},
             {"prompt": "a drone", "seed": 2, "id": "drone"}]  # fmt: skip
    spec = music_job(tmp_path, items)
    assert legato("batch", str(spec), env=cli_env).code == 0
    out = tmp_path / "out"
    good = (out / "jig.wav").read_bytes()
    (out / "jig.wav").write_bytes(good[: len(good) // 2])  # truncated
    (out / "reel.wav").unlink()  # deleted
    again = legato("batch", str(spec), "--json", env=cli_env)  # as the first run computed: the same bytes
    assert sorted(again.json()["written"]) == ["jig", "reel"]
    assert again.json()["skipped"] == ["drone"]
    assert (out / "jig.wav").read_bytes() == good  # made again, the same bytes
    assert sorted(ids_in(out)) == ["drone", "jig", "reel"]  # one line per item
    music_job(tmp_path, items, formats=["wav", "png"])
    more = invoke("batch", str(spec), "--json", env=cli_env)
    assert sorted(more.json()["written"]) == ["drone", "jig", "reel"]
    assert all((out / f"{i}.png").is_file() for i in ("jig", "reel", "drone"))
    assert sorted(ids_in(out)) == ["drone", "jig", "reel"]


def test_a_video_folder_made_with_another_soundtrack_is_refused(tmp_path, models, cli_env):
    other = tmp_path / "music-other"
    shutil.copytree(models / "music-tiny", other)
    weights = other / "base" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # other weights: another model
    weights.write_bytes(bytes(data))
    out = tmp_path / "vid"
    base = ["generate", "video", "a slow zoom", "-m", "video-tiny", "-o", str(out)]
    assert invoke(*base, "--soundtrack", "music-tiny", env=cli_env).code == 0
    refused = invoke(*base, "--soundtrack", str(other), env=cli_env)
    assert refused.code == 2
    assert "holds items made by model" in refused.stderr
    assert invoke(*base, "--soundtrack", "music-tiny", "--json", env=cli_env).json()["skipped"]


def test_a_riff_resumes_and_is_listed_in_the_folders_manifest(tmp_path, cli_env):
    args = ["generate", "music", "a jig", "a reel", "--interpolate", "3", "-m", "music-tiny", "-o",
            str(tmp_path / "riffs"), "--json"]  # fmt: skip
    first = legato(*args, env=cli_env)
    assert first.code == 0, first.stderr
    assert first.json()["skipped"] is False
    (row,) = read_manifest(tmp_path / "riffs")
    assert row["files"] == [os.path.basename(f) for f in [first.json()["track"], *first.json()["steps"]]]
    assert invoke(*args, env=cli_env).json()["skipped"] is True
    os.truncate(first.json()["steps"][1], 100)
    assert invoke(*args, env=cli_env).json()["skipped"] is False  # a damaged step: made again, one line
    assert len(read_manifest(tmp_path / "riffs")) == 1


def test_an_edit_never_overwrites_its_input_or_an_existing_file_unasked(tmp_path, cli_env):
    song = write_audio(tmp_path / "in.wav", harmonic_notes(2.0, 16_000)[None], 16_000)
    original = song.read_bytes()
    onto_input = legato(
        "edit", "music", str(song), "a reel", "-m", "music-tiny", "-o", str(song), env=cli_env
    )
    assert_clean_error(onto_input, 2, "is the input")
    assert song.read_bytes() == original
    taken = tmp_path / "taken.wav"
    taken.write_bytes(b"mine")
    existing = invoke("edit", "music", str(song), "a reel", "-m", "music-tiny", "-o", str(taken), env=cli_env)
    assert_clean_error(existing, 2, "exists", "--overwrite")
    assert taken.read_bytes() == b"mine"
    assert invoke("edit", "music", str(song), "a reel", "-m", "music-tiny", "-o", str(taken), "--overwrite",
                  env=cli_env).code == 0  # fmt: skip
    assert taken.read_bytes() != b"mine"


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, cli_env):
    song = write_audio(tmp_path / "in.wav", harmonic_notes(2.0, 16_000)[None], 16_000)
    places = [tmp_path / "a-file"]  # a folder that is a file: unwritable for everyone, root included
    places[0].write_text("not a folder")
    if os.geteuid() != 0:  # and a read-only folder, where permissions bind
        places.append(tmp_path / "ro")
        places[1].mkdir()
        places[1].chmod(0o555)
    try:
        for place in places:
            edit = (legato if place == places[0] else invoke)("edit", "music", str(song), "a reel", "-m", "music-tiny", "-o", str(place / "x.wav"),
                          env=cli_env)  # fmt: skip
            assert_clean_error(edit, 2, str(place), "cannot write")
            spec = music_job(tmp_path, [{"prompt": "a jig"}], output=str(place / "out"))
            batch = invoke("batch", str(spec), env=cli_env)
            assert_clean_error(batch, 2, str(place / "out"), "cannot write")
    finally:
        for place in places[1:]:
            place.chmod(0o755)


def test_written_files_follow_the_umask(tmp_path, cli_env):
    env = {**os.environ, **cli_env}
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        out = tmp_path / f"out-{mask:o}"
        spec = write(tmp_path / f"job-{mask:o}.yaml", kind="music", model="music-tiny", output=str(out),
                     items=[{"prompt": "a jig"}])  # fmt: skip
        done = subprocess.run([str(LEGATO), "batch", str(spec)], env=env, capture_output=True, text=True,
                              preexec_fn=lambda m=mask: os.umask(m), timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        for file in out.iterdir():
            if not file.name.startswith("."):
                assert stat.S_IMODE(file.stat().st_mode) == mode, (file.name, oct(file.stat().st_mode))


def test_a_failed_run_leaves_no_empty_folder_and_damaged_weights_are_named(tmp_path, models, cli_env):
    broken = tmp_path / "models" / "music-broken"
    shutil.copytree(models / "music-tiny", broken)
    weights = broken / "sr" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a copy cut short
    listed = legato("models", "--path", str(tmp_path / "models"), "--json", env=cli_env)
    (found,) = [m for m in listed.json()["models"] if m["name"] == "music-broken"]
    assert found["damaged"]
    assert str(weights.resolve()) in found["damaged"][0]
    assert listed.json()["ok"] is False
    vocabulary = broken / "vocabulary.json"
    vocabulary.write_text('{"terms": {"styles": ["jig"]}, "capt')  # cut short: loading refuses it
    listed = legato("models", "--path", str(tmp_path / "models"), env=cli_env)
    assert f"{vocabulary} is not a vocabulary file" in listed.stderr.replace("\n", "")
    assert "DAMAGED" in listed.stdout
    out = tmp_path / "never"
    failed = legato("generate", "music", "a jig", "-m", str(broken), "-o", str(out), env=cli_env)
    assert_clean_error(failed, 2, str(weights), "damaged weights")
    assert not out.exists()


def test_an_io_failure_while_writing_exits_1_and_names_the_file(tmp_path, cli_env, monkeypatch):
    import legato.codec.atomic as atomic

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    out = tmp_path / "out"
    result = invoke("generate", "music", "a jig", "-m", "music-tiny", "-o", str(out), env=cli_env)
    monkeypatch.undo()
    assert result.code == 1
    assert f"cannot write {out}" in result.stderr
    assert "No space left on device" in result.stderr
    assert read_manifest(out) == []  # no line for an item whose files were not written
