"""``legato serve``: the command resolves models like every command, then starts the service's ``main``."""

import pytest

from .conftest import assert_clean_error, free_ports, invoke, legato


def test_serve_refuses_a_model_it_cannot_find_before_starting_anything(cli_env):
    assert_clean_error(
        invoke("serve", "-m", "music=no-such-model", env=cli_env), 2, "no model 'no-such-model'"
    )


@pytest.mark.slow
def test_serve_starts_the_service_and_returns_with_no_blocking(tmp_path, cli_env):
    (port,) = free_ports(1)
    result = legato("serve", "--port", str(port), "-m", "music-tiny", "-m", "video-tiny", "--no-blocking",
                    cwd=tmp_path, env={**cli_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert f"http://127.0.0.1:{port}" in result.stdout


def test_serve_on_every_interface_needs_a_token_or_insecure(cli_env):
    refused = invoke(
        "serve", "--host", "0.0.0.0", "-m", "music-tiny", env={**cli_env, "LEGATO_SERVE_TOKEN": ""}
    )
    assert_clean_error(refused, 2, "--token", "--insecure")


def test_serve_refuses_vae_tiling_for_pixel_models_before_starting_anything(cli_env):
    refused = invoke("serve", "-m", "music-tiny", "-m", "video-tiny", "--vae-tiling", env=cli_env)
    assert_clean_error(refused, 2, "--vae-tiling", "latent models", "leave them off")
