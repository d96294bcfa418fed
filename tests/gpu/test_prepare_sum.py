"""scripts/gpu/prepare.sh sums the bytes a device run would carry with awk; the sum must reach bash's $(( ))
as digits however large it is (a .venv in the checkout passes 2^31, which awk's print writes as 2.41273e+09)."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_byte_sum_is_printed_as_digits_past_2_to_the_31():
    script = (REPO / "scripts" / "gpu" / "prepare.sh").read_text()
    program = re.search(r"\| awk '([^']*)'\)", script).group(1)  # the summing program, as prepare.sh runs it
    sizes = "2412730000\n3000000000\n1\n"
    proc = subprocess.run(["bash", "-c", f"bytes=$(awk '{program}'); echo $(( bytes / 1048576 )) $bytes"],
                          input=sizes, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(5412730001 // 1048576), "5412730001"]
