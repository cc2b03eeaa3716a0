"""The README's Python examples run as written (with a tiny checkpoint), so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """The README's ```python code blocks, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_two_commands():
    blocks = re.findall(r"```(\w*)\n(.*?)```", README.read_text(), flags=re.S)
    assert [lang for lang, _ in blocks[:2]] == ["bash", "bash"]
    assert "vwm run" in blocks[0][1] and "pytest" in blocks[1][1]
    assert all("torch==2.13.0" in body for _, body in blocks[:2])


def test_readme_python_examples_run(tiny_checkpoint, tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    namespace: dict = {}
    for block in blocks:
        code = block.replace("runs/model/checkpoint", tiny_checkpoint)
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs" / "ppo_latent.zip").is_file()
    assert len(namespace["result"].returns) == 5
