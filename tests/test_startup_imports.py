"""A photo run imports only what it uses: Lightning, torchvision, face_alignment and scipy.optimize cost 4-5 s of
every ``reconstruct``'s start on the 2-core machine (15 s -> 7 s for one photo) and are needed only by the image
regressor, FAN and non-ICT ARKit maps."""

import subprocess
import sys

HEAVY = ("lightning", "torchvision", "face_alignment", "scipy.optimize")


def _imported(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                         check=True, capture_output=True, text=True).stdout.split()
    return [name for name in HEAVY if name in out]


def test_photo_run_modules_leave_heavy_packages_unimported():
    # what reconstruct imports for a photo run, the shipped landmark network (--quality instant) included
    code = ("import f2p.commands.reconstruct, f2p.export.photo, f2p.pipeline, f2p.perception.detectors, "
            "f2p.perception.photo, f2p.fitting.fitter, f2p.fitting.estimate, f2p.systems.landmark_weights, "
            "f2p.nets.landmark_regressor")
    assert _imported(code) == []


def test_lazy_network_names_still_resolve():
    # configs and checkpoints name f2p.nets.ResNetEncoder: the package attribute imports its module on first use
    assert _imported("import f2p.nets\nf2p.nets.ResNetEncoder") == ["torchvision"]
