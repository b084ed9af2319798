"""Numbers *published in the paper* (Fetaya et al., ICLR 2020), for side-by-side comparison.

Nothing here is computed by this project; every value is copied from the paper's text.
"""

from __future__ import annotations

PAPER = "Fetaya et al. (ICLR 2020)"

#: Table 1: test accuracy (%) and test bits/dim, per dataset and objective.
TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "mnist": {"base": (96.9, 0.95), "reweighted": (99.0, 1.10), "split": (99.3, 1.00)},
    "cifar10": {"base": (56.8, 3.47), "reweighted": (83.2, 3.54), "split": (84.0, 3.53)},
}

#: Table 2: "U% (F%)" = undetected successful attacks within eps (all fooling attacks within
#: eps, detected or not); eps = 1.5 (MNIST), 33/255 (CIFAR-10), L2 on the [0, 1] pixel scale.
TABLE2: dict[str, dict[str, dict[str, str]]] = {
    "mnist": {
        "reweighted": {"cw": "0% (100%)", "boundary": "43% (82%)", "cw-det": "17% (100%)",
                       "boundary-det": "0% (0%)"},
        "split": {"cw": "1% (100%)", "boundary": "36% (80%)", "cw-det": "14% (100%)",
                  "boundary-det": "0% (0%)"},
    },
    "cifar10": {
        "reweighted": {"cw": "0% (97%)", "boundary": "67% (100%)", "cw-det": "6% (99%)",
                       "boundary-det": "100% (100%)"},
        "split": {"cw": "0% (0%)", "boundary": "72% (100%)", "cw-det": "3% (100%)",
                  "boundary-det": "100% (100%)"},
    },
}  # fmt: skip

#: Table 3 (Reweighted models): test accuracy (%) and test bits/dim.
TABLE3: dict[str, tuple[float, float]] = {
    "mnist": (99.0, 1.10),
    "bg-mnist-5": (99.0, 1.67),
    "bg-mnist-1": (99.0, 3.30),
    "bg-mnist-0": (98.0, 4.58),
    "cifar10": (84.0, 3.53),
}

#: Appendix B detection thresholds (bits/dim) and the share of test images accepted by them.
THRESHOLD_BPD: dict[str, float] = {"mnist": 1.4, "cifar10": 4.0}
THRESHOLD_ACCEPTED_SHARE: dict[str, float] = {"mnist": 1.0, "cifar10": 0.786}

#: Section 4.4: number of interpolation pairs and share of paths that stay accepted.
INTERPOLATION: dict[str, dict[str, float]] = {
    "mnist": {"n_pairs": 1487, "share_paths_all_accepted": 0.005},
    "cifar10": {"n_pairs": 1179, "share_paths_all_accepted": 1.0},
}

#: Section 4.2: confidence margin quoted for C = 10, delta = 1e-5 ("about 6", base-10 logs).
CONFIDENCE_MARGIN_LOG10 = 6

#: Model scale of the paper (App. B): 150 epochs, 128 channels and 12 blocks per level (MNIST),
#: 256 and 16 (CIFAR-10). The paper does not say what hardware it trained on.
PAPER_SCALE = "paper: 150 epochs, 128 (MNIST) / 256 (CIFAR-10) channels"

DATASET_LABEL: dict[str, str] = {
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "bg-mnist-0": "BG-MNIST-0",
    "bg-mnist-1": "BG-MNIST-1",
    "bg-mnist-5": "BG-MNIST-5",
}

ATTACK_LABEL: dict[str, str] = {
    "cw": "CW-L2",
    "boundary": "Boundary",
    "cw-det": "CW-L2 + detection",
    "boundary-det": "Boundary + detection",
}
