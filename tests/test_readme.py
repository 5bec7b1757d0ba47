"""README's first lines give the two commands, and CI runs exactly the second one."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_commands_match_ci():
    lines = (ROOT / "README.md").read_text().splitlines()[:12]
    commands = [line.strip() for line in lines if line.strip().startswith("python3 -m venv")]
    assert len(commands) == 2, commands
    demo, tests = commands
    assert demo.endswith("visionloop demo")
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
