"""`make test` must say when whole areas were skipped for missing system packages (issue 15)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- tests that must not pass silently ---------------------------------------------------------------------------------

def test_the_run_ends_with_one_line_about_tests_skipped_for_missing_system_packages(tmp_path):
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom tests.conftest import pytest_terminal_summary  # noqa\n")
    (tmp_path / "test_some.py").write_text(textwrap.dedent("""
        import pytest

        def test_runs():
            pass

        @pytest.mark.skipif(True, reason="mosquitto missing (apt-get install mosquitto)")
        def test_broker():
            pass

        def test_sshd():
            pytest.skip("needs /usr/sbin/sshd (apt-get install openssh-server openssh-client)")

        @pytest.mark.skip(reason="not for this reason")
        def test_other():
            pass
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = ("2 test(s) skipped for missing system packages; to run them: "
            "sudo apt-get install -y mosquitto openssh-client openssh-server")
    assert proc.stdout.count(line) == 1, proc.stdout
