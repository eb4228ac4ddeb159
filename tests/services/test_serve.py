"""The online service (legato.services.serve) on a real local Ray cluster, over HTTP on loopback.

One server per module: tiny untrained music and video cascades, two CPUs, ``main(blocking=False)``. The
tests talk to it as a client would (urllib), decode what it returns with av, and compare a clip with the
same request run by `MusicPipeline` in this process.
"""

import io
import json
import os
import socket
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from legato.services.serve import APP_NAME, Limits, build_app, main
from legato.services.serve.client import Client, ClientError, load

LIMITS = Limits(max_prompts=4, max_duration=8.0, max_body_bytes=2048, max_active_jobs=2)
TOKEN = "a-token-for-tests"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny cascades saved as pipeline folders: music (1 s windows), video (8 frames of 16 px)."""
    from legato.codec import SMALL
    from legato.pipelines import MusicPipeline, TextEncoder, VideoPipeline
    from legato.recipes.datasets.music import vocabulary as music_words
    from legato.recipes.networks import music_cascade, video_cascade

    root, text = tmp_path_factory.mktemp("models"), TextEncoder()
    params = SMALL.replace(n_mels=32)
    music = music_cascade(params, window=64, text_dim=text.dim, channels=(16, 32), sr_channels=(16, 32),
                          steps=(4, 2), batch_size=(4, 2))  # fmt: skip
    video = video_cascade(frames=8, size=16, text_dim=text.dim, channels=(16, 32), sr_channels=(8, 16),
                          steps=(2, 2, 2), batch_size=(4, 2, 2))  # fmt: skip
    return {
        "music": MusicPipeline(music, params, text, vocabulary=music_words()).save_pretrained(root / "music"),
        "video": VideoPipeline(video, 8.0, text).save_pretrained(root / "video"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(tiny_models, tmp_path_factory):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray import serve

    if ray.is_initialized():  # another module's cluster: this one needs its own
        ray.shutdown()
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")),
        _node_ip_address="127.0.0.1", log_to_driver=False,
    )  # fmt: skip
    try:
        jobs = tmp_path_factory.mktemp("jobs")
        earlier = earlier_service(jobs)  # the records an earlier service, killed, left in the same folder
        url = main("127.0.0.1", free_port(), models=tiny_models, blocking=False, limits=LIMITS, jobs_dir=jobs,
                   token=TOKEN)  # fmt: skip
        client = Client(url, timeout=120, token=TOKEN)
        client.earlier = earlier
        yield client
    finally:
        serve.shutdown()
        ray.shutdown()


def earlier_service(jobs: Path) -> dict[str, str]:
    """What a service killed mid-job leaves in its jobs folder: one job still marked running, one done."""
    from legato.services.serve.schemas import JobFile
    from legato.services.serve.store import JobStore

    store = JobStore(jobs)
    running = store.new("music", {"prompt": "a jig"}, service="killed")
    done = store.new("music", {"prompt": "a reel"}, service="killed")
    (store.folder(done.id) / "0000.wav").write_bytes(b"RIFF")
    file = JobFile(name="0000.wav", url=f"/v1/jobs/{done.id}/files/0000.wav", prompt="a reel", seed=0)
    store.save(done.model_copy(update={"status": "done", "files": [file]}))
    return {"running": running.id, "done": done.id}


def test_a_restarted_service_finds_earlier_jobs_and_fails_the_unfinished(client):
    running = client.job(client.earlier["running"])  # not a 404: the record is there
    assert running["status"] == "failed"
    assert running["error"]["error"] == "interrupted"
    assert "submit the request again" in running["error"]["fix"]
    done = client.job(client.earlier["done"])
    assert done["status"] == "done"
    assert [f["name"] for f in done["files"]] == ["0000.wav"]


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """A file's audio as float samples ``(C, N)`` and its sample rate, through av."""
    with av.open(io.BytesIO(data)) as f:
        stream = f.streams.audio[0]
        frames = [frame.to_ndarray() for frame in f.decode(stream)]
        rate, channels = stream.rate, stream.channels
    x = np.concatenate(frames, axis=-1).astype(np.float64)
    x = x.reshape(-1, channels).T if x.shape[0] == 1 and channels > 1 else x  # packed: interleaved samples
    return (x / 32768 if np.abs(x).max() > 1.5 else x), rate


def test_health_lists_models_and_limits(client):
    health = client.health()
    assert health["status"] == "ok"
    assert health["music"]["stages"] == ["base", "sr"]
    assert health["music"]["schedulers"] == ["ddim", "ddim"]  # the names a request's "scheduler" takes
    assert health["music"]["sample_rate"] == 16000
    assert health["video"]["frames"] == 8
    assert health["video"]["soundtrack"] is True
    assert health["limits"]["max_prompts"] == LIMITS.max_prompts


def test_openapi_lists_the_routes_and_forbids_unknown_fields(client):
    schema = client.json("GET", "/openapi.json")
    assert {
        "/v1/music",
        "/v1/video",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/files/{name}",
        "/healthz",
    } <= set(schema["paths"])
    music = schema["components"]["schemas"]["MusicRequest"]
    assert music["additionalProperties"] is False
    assert "wav" in music["properties"]["format"]["enum"]


@pytest.mark.parametrize("scheduler", [None, "dpm++"])
def test_music_wav_decodes_and_equals_the_local_pipeline(client, tiny_models, scheduler):
    """Sampling settings travel to the stage replicas with each call: another scheduler per request gives
    what that scheduler gives in this process, and not what the model's own one gives. Clips are mastered
    (44.1 kHz stereo) unless the request says ``master: false`` (the model's 16 kHz mono)."""
    from legato.pipelines import MusicPipeline
    from legato.pipelines.jobs import with_sampling

    settings = {"scheduler": scheduler, "master": False} if scheduler else {}
    job = client.music(prompt="a jig on fiddle", seed=5, duration=2.0, **settings)
    assert job["status"] == "done"
    assert [f["name"] for f in job["files"]] == ["0000.wav"]
    audio, rate = decode_audio(client.download(job["files"][0]["url"]))
    assert (rate, audio.shape) == ((16000, (1, 32000)) if scheduler else (44100, (2, 88200)))
    # The same request in this process, with the replicas' thread count (one each on two shared CPUs).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = MusicPipeline.from_pretrained(
            tiny_models["music"], **({"mastering": None} if scheduler else {})
        )
        local = with_sampling(pipe, scheduler=scheduler)(["a jig on fiddle"], seeds=[5], duration=2.0)[0]
        own = pipe(["a jig on fiddle"], seeds=[5], duration=2.0)[0] if scheduler else local
    finally:
        torch.set_num_threads(before)
    assert np.abs(audio - local.audio.numpy()).max() <= 1.5 / 32768  # equal up to 16-bit rounding
    assert np.abs(audio).max() > 0.01
    if scheduler:
        assert np.abs(audio - own.audio.numpy()).max() > 0.01


def test_a_prompt_far_from_the_training_captions_gets_a_warning_field(client):
    job = client.music(prompts=["heavy metal guitar solo", "a jig on flute, fast tempo"], master=False)
    assert job["status"] == "done"
    (warning,) = job["warnings"]  # the in-vocabulary prompt gets none
    assert "'heavy metal guitar solo' is far from everything this model was trained on" in warning
    assert "styles: chorale, reel, jig, hornpipe" in warning
    assert client.job(job["id"])["warnings"] == job["warnings"]  # kept in the job's record


def test_video_with_soundtrack_is_an_mp4_with_frames_and_sound(client):
    job = client.video(prompt="a camera move over a photo", seed=1, soundtrack=True)
    data = client.download(job["files"][0]["url"])
    with av.open(io.BytesIO(data)) as f:
        assert len(f.streams.audio) == 1
        frames = list(f.decode(video=0))
    assert len(frames) == 8
    assert (frames[0].width, frames[0].height) == (16, 16)


def test_a_video_longer_than_the_models_window_continues_it(client):
    job = client.video(prompt="a camera move over a photo", seed=1, frames=13)
    with av.open(io.BytesIO(client.download(job["files"][0]["url"]))) as f:
        frames = list(f.decode(video=0))
    assert len(frames) == 13


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "fix"),
    [
        ("/v1/music", {"prompt": "a reel", "sed": 3}, 422, "sed", "remove it"),
        ("/v1/music", {"prompt": "a reel", "duration": 600}, 422, "duration", "at most 8 s"),
        ("/v1/music", {"prompt": "a reel", "duration": -1}, 422, "duration", "above 0"),
        ("/v1/music", {"prompts": ["a"] * 5}, 422, "prompts", "at most 4"),
        ("/v1/music", {"prompt": "a", "prompts": ["b"]}, 422, "prompt", "exactly one"),
        ("/v1/music", {"prompts": ["a", "b"], "seed": [1]}, 422, "seed", "one seed per prompt"),
        ("/v1/music", {"prompt": "a", "format": "aiff"}, 422, "format", "'wav'"),
        ("/v1/music", {"prompt": "a", "steps": [4]}, 422, "steps", "one number per stage"),
        ("/v1/music", {"prompt": "a", "guidance": 0.5}, 422, "guidance", "at least 1"),
        ("/v1/music", {"prompt": "a", "scheduler": "lms"}, 422, "scheduler", "'dpm++'"),
        ("/v1/video", {"prompt": "a", "frames": 500}, 422, "frames", "at most 240 frames"),
        ("/v1/music", b"{not json", 422, None, "JSON object"),
        ("/v1/music", {"prompt": "x" * 3000}, 413, None, "smaller"),
        ("/v1/music", {"prompt": "ragtime\u001b[31m piano"}, 422, "prompt", "plain text only"),
        ("/v1/music", {"prompts": ["a jig", "   "]}, 422, "prompts.1", "describe the music"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_fix(client, path, body, status, field, fix):
    got, headers, data = client.request("POST", path, body)
    answer = json.loads(data)
    assert got == status, answer
    assert headers["content-type"] == "application/json"
    assert answer["message"]
    assert answer["fix"]
    problems = answer.get("problems") or [answer]
    if field is not None:
        assert field in [p["field"] for p in problems], problems
    assert any(fix in p["fix"] or fix in p.get("problem", "") for p in problems), problems


def test_unknown_jobs_files_and_routes_are_json_404s(client):
    for path in [
        "/v1/jobs/" + "0" * 32,
        "/v1/jobs/../../etc",
        "/v1/jobs/" + "0" * 32 + "/files/x.wav",
        "/v2",
    ]:
        status, _, data = client.request("GET", path)
        assert status == 404, path
        assert json.loads(data)["fix"]
    status, _, data = client.request("GET", "/v1/music")
    assert status == 405
    assert json.loads(data)["error"] == "http_405"


def test_wait_false_returns_202_then_the_job_is_polled_and_downloaded(client):
    status, headers, data = client.request("POST", "/v1/music?wait=false",
                                           {"prompts": ["a reel", "a waltz"], "seed": 7, "format": "mp3"})  # fmt: skip
    job = json.loads(data)
    assert status == 202
    assert job["status"] == "running"
    assert headers["location"] == f"/v1/jobs/{job['id']}"
    job = client.wait(job["id"])
    assert job["status"] == "done"
    assert [(f["prompt"], f["seed"]) for f in job["files"]] == [
        ("a reel", 7),
        ("a waltz", 8),
    ]
    audio, rate = decode_audio(client.download(job["files"][1]["url"]))
    assert rate == 44100  # mastered by default
    assert abs(audio.shape[-1] / rate - 1.024) < 0.1


def test_over_max_active_jobs_gets_503_and_the_running_jobs_finish(client):
    body = {"prompts": ["a long reel"] * 4, "duration": 4.0}
    answers = [client.request("POST", "/v1/music?wait=false", body) for _ in range(4)]
    statuses = [a[0] for a in answers]
    assert statuses[:2] == [202, 202], statuses
    assert 503 in statuses[2:], statuses
    shed = next(a for a in answers if a[0] == 503)
    assert json.loads(shed[2])["error"] == "overloaded"
    assert shed[1]["retry-after"] == "5"
    for status, _, data in answers:
        if status == 202:
            assert client.wait(json.loads(data)["id"])["status"] == "done"
    # The load has dropped: the service takes work again, and says it is healthy.
    assert client.health()["status"] == "ok"
    after = [client.request("POST", "/v1/music?wait=false", body) for _ in range(2)]
    assert [a[0] for a in after] == [202, 202], after
    # Leave the server idle: the module's later tests share it, and a slot still held here answers them 503.
    for _, _, data in after:
        assert client.wait(json.loads(data)["id"])["status"] == "done"


# One bad request through all three surfaces: the HTTP service (4xx, JSON naming the field), the command
# (exit 2, one error line, no traceback, no file) and the Python API (a typed error), each naming the value.
SURFACES = [
    ("control characters", "music", {"prompt": "ragtime\u001b[31m piano"}, "prompt", [], "U+001B"),
    ("empty prompt", "music", {"prompt": "   "}, "prompt", [], "empty"),
    ("huge prompt", "music", {"prompt": "a jig " * 1000}, None, [], "characters"),
    ("absurd duration", "music", {"prompt": "a jig", "duration": 1e9}, "duration", ["--duration", "1e9"], "duration"),
    ("absurd frames", "video", {"prompt": "a pan", "frames": 10**9}, "frames", ["--frames", "1000000000"], "frames"),
    ("steps per stage", "music", {"prompt": "a jig", "steps": [1, 2, 3]}, "steps", ["--steps", "1,2,3"], "per stage"),
    ("guidance under 1", "music", {"prompt": "a jig", "guidance": 0.5}, "guidance", ["--guidance", "0.5"], "guidance"),
]  # fmt: skip


def api_call(kind: str, body: dict, folder: Path):
    from legato.pipelines import MusicPipeline, VideoPipeline
    from legato.pipelines.jobs import with_sampling

    pipe = (MusicPipeline if kind == "music" else VideoPipeline).from_pretrained(folder)
    pipe = with_sampling(pipe, body.get("steps"), body.get("guidance"))
    length = {"duration": body["duration"]} if "duration" in body else {}
    if "frames" in body:
        length = {"frames": body["frames"]}
    return pipe([body["prompt"]], seeds=[0], **length)


@pytest.mark.parametrize(
    ("kind", "body", "field", "options", "words"), [c[1:] for c in SURFACES], ids=[c[0] for c in SURFACES]
)
def test_a_bad_request_is_refused_by_the_service_the_command_and_the_api(
    client, tiny_models, tmp_path, kind, body, field, options, words
):
    from legato.diffusion import DiffusionError

    from .conftest import legato

    status, _, data = client.request("POST", f"/v1/{kind}", body)
    assert status in (413, 422), (status, data)
    answer = json.loads(data)
    if field is not None:
        assert answer["problems"][0]["field"] == field, answer
    out = tmp_path / "out"
    result = legato("generate", kind, body["prompt"], "-m", str(tiny_models[kind]), *options, "-o", str(out))
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert words in result.stderr, result.stderr
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    with pytest.raises((ValueError, DiffusionError)) as err:
        api_call(kind, body, tiny_models[kind])
    assert words in str(err.value), str(err.value)


def test_concurrent_requests_each_get_their_own_clip(client):
    bodies = [{"prompt": f"tune {i % 3}", "seed": i % 3} for i in range(6)]
    result = load(client.url, bodies, requests=6, concurrency=2, timeout=120, token=TOKEN)
    assert result.statuses == {200: 6}
    assert len(result.latencies) == 6
    files = {}
    for job in result.jobs:
        data = client.download(job["files"][0]["url"])
        assert decode_audio(data)[0].shape == (2, round(63 * 256 * 44_100 / 16_000))  # one window, mastered
        files.setdefault(job["request"]["seed"], set()).add(data)
    assert sorted(files) == [0, 1, 2]
    assert all(len(v) == 1 for v in files.values())
    assert len({next(iter(v)) for v in files.values()}) == 3


def test_a_bad_setup_fails_before_anything_starts(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="music_model="):
        build_app()
    with pytest.raises(FileNotFoundError, match=r"no cascade\.json"):
        build_app(tmp_path)
    with pytest.raises(ValueError, match="no GPUs"):
        build_app(tiny_models["music"], device="cuda", cluster={"CPU": 2.0})
    with pytest.raises(ValueError, match="resources names"):
        build_app(tiny_models["music"], resources={"video": {}}, cluster={"CPU": 2.0})
    with pytest.raises(ValueError, match=r"for latent models.*leave them off"):
        build_app(tiny_models["music"], tiny_models["video"], vae_tiling=True, cluster={"CPU": 2.0})


@pytest.mark.slow
def test_load_32_requests_concurrency_8_answers_200_or_503(client):
    result = load(client.url, {"prompt": "a reel", "duration": 2.0}, requests=32, concurrency=8, timeout=120,
                  token=TOKEN)  # fmt: skip
    assert sum(result.statuses.values()) == 32
    assert set(result.statuses) <= {200, 503}
    assert result.ok >= 1
    assert all(job["status"] == "done" for job in result.jobs)


def test_app_name_is_the_one_main_deploys(client):
    from ray import serve

    assert APP_NAME in serve.status().applications


def test_client_errors_carry_the_body(client):
    with pytest.raises(ClientError) as err:
        client.music(prompt="")
    assert err.value.status == 422
    assert err.value.body["problems"][0]["field"] == "prompt"
    with pytest.raises(ClientError, match=r"sead: .*fix") as misspelt:  # which field is wrong, in the message
        client.music(prompt="a jig", sead=3)
    assert [p["field"] for p in misspelt.value.problems] == ["sead"]


def test_models_are_sorted_by_the_kind_their_folders_say(tiny_models, tmp_path):
    from legato.services.serve.app import by_kind

    assert by_kind({"a": tiny_models["video"], "b": tiny_models["music"]}) == {
        "music": str(tiny_models["music"]),
        "video": str(tiny_models["video"]),
    }
    with pytest.raises(ValueError, match="both music models"):
        by_kind([tiny_models["music"], tiny_models["music"]])
    with pytest.raises(FileNotFoundError, match="not a pipeline folder"):
        by_kind([tmp_path])


def test_a_request_without_the_token_gets_a_json_401(client):
    for token in (None, "wrong"):
        with pytest.raises(ClientError) as refused:
            Client(client.url, timeout=30, token=token).health()
        assert refused.value.status == 401
        assert refused.value.body["error"] == "unauthorized"
        assert "Authorization: Bearer" in refused.value.body["fix"]


def test_a_host_beyond_loopback_needs_a_token_or_insecure(tiny_models):
    with pytest.raises(ValueError, match=r"--token.*--insecure"):
        main("0.0.0.0", 8000, models=tiny_models, blocking=False)  # refused before anything starts
