"""foundation.provenance.cpu_model: the CPU named from /proc/cpuinfo, with the ISA that decides
the fast path, and a fallback where the file is unreadable."""

from __future__ import annotations

import platform
from pathlib import Path

from foundation.provenance import cpu_model


def test_cpu_model_names_the_first_processor_and_its_bf16_extensions(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    block = ("processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
             "model name\t: {name}\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 sha_ni\n\n")
    info.write_text(block.format(i=0, name="AMD EPYC 9R14") + block.format(i=1, name="other"))
    assert cpu_model(info) == "AMD EPYC 9R14 (family 25 model 17; avx2, avx512f, avx512_bf16)"


def test_cpu_model_says_when_no_extension_of_interest_is_there(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse sse2\n")
    assert cpu_model(info).startswith("Old CPU (none of avx2/")


def test_cpu_model_falls_back_to_the_platform_without_cpuinfo(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine())
