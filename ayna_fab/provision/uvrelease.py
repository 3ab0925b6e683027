"""The uv release setup installs on hosts, as root: one version and the sha256 of its Linux wheels.

pip installs it with --require-hashes and --only-binary :all:, so no index (the host's, or one
that answers with a higher version or an sdist whose build runs code as root) can hand root
anything else. The sandbox's wheelhouse (sandbox/wheelhouse-base.txt) pins the same version.
"""

from __future__ import annotations

VERSION = "0.13.9"

# From PyPI's simple index for uv 0.13.9 (every Linux wheel: pip picks the one for the host).
WHEEL_SHA256 = (
    "56ec37616c00220032fc7b8c9d0ef51367fd0d70d9cd6ddd841660f949f84fed",  # linux_armv6l
    "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",  # manylinux_2_17_aarch64
    "7ec1e1dd9b6cb335c301afdf877989df384227313981850755a59561f75e4ab8",  # manylinux_2_17_armv7l (+musl)
    "16963d19594e18d746a70c7fce82237bde4f2cac4cfcf0ca2b84796fe9d0c6e9",  # manylinux_2_17_armv7l
    "db5c8df7145c21ffea9c0f74e38823bac3af60cbadf0e26b8633f08627b17bab",  # manylinux_2_17_i686
    "c5dbdb7c8737cd183a9dce95b39cfd1f3d54ec2a27a1bb58f160293f9ba2c805",  # manylinux_2_17_ppc64le
    "a6e845f387e4ed55bb59342957a9179e24a631fcc7668bda3426ae1cef8ed4b9",  # manylinux_2_17_s390x
    "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",  # manylinux_2_17_x86_64
    "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",  # manylinux_2_28_aarch64
    "6d5114bba238adddacb32fb11904f2b3ff4e988f8e9ff0d8d3b5e9822cf836b8",  # manylinux_2_31_riscv64 (+musl)
    "6b0c7b9f47a5d011939d61e324d3fe18a8bc155d8dd53add738709a92f290a7c",  # manylinux_2_31_riscv64
    "a2ee66fe8b6608e1482ab1bde5799da04705c1cb40324c7f66054ecf46ae6e40",  # musllinux_1_1_i686
    "2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25",  # musllinux_1_1_x86_64
)


def requirements() -> str:
    """pip's requirements file: the one version, the only files it may install."""
    hashes = "".join(f" \\\n    --hash=sha256:{h}" for h in WHEEL_SHA256)
    return f"uv=={VERSION}{hashes}\n"
