"""The built-in demo dataset: a small synthetic person re-identification set in Market-1501's layout.

    python -m trinet.demo --out runs/demo/data

writes, under the output folder (paths in the CSVs are relative to it):

    bounding_box_train/   training images            demo_train.csv
    query/                query images               demo_query.csv
    bounding_box_test/    gallery, junk, distractors demo_test.csv
    demo.json             the settings and counts (written last: a complete dataset has it)

Files are named like Market-1501 (Zheng et al., ICCV 2015), ``PPPP_cCsS_FFFFFF_BB.jpg``: 4-digit
identity, camera, sequence, 6-digit frame and 2-digit bounding-box index. Junk images (pid ``-1``,
ignored at evaluation) are badly cropped views of test identities; distractors (pid ``0000``, kept
as negatives) are background crops and strangers. Train and test identities are disjoint numbers in
1..1501; the query holds at most one image per identity and camera, and every query identity has
gallery images under another camera, so the Market-1501 protocol applies unchanged.

Why it looks the way it does: each identity has a stable appearance (clothing colours and patterns,
build, hair, bags, hat) while each camera imposes its own background, illumination, colour cast,
gamma, resolution, blur, noise, viewpoint and framing. Same-camera images of different people are
therefore closer in raw pixels than cross-camera images of one person, so a pixel baseline ranks
poorly (see `benchmarks/pixel_baseline.py`), while an embedding trained with the batch-hard triplet
loss of "In Defense of the Triplet Loss" (Hermans et al. 2017) learns the invariances within minutes
on a CPU. Everything is drawn from ``--seed``: the same settings give identical files (with the same
OpenCV build, whose JPEG encoder writes the bytes).

Other sites: ``--world N`` draws every distribution a site fixes (cameras' casts, gains, illumination, blur,
noise and resolution; backgrounds; viewpoints and framing; clothing) from ``N``, and a flag per distribution
sets it on top (`world`). World 0 is the demo as it always was, byte for byte.

The package follows the steps: `world` (the site's distributions), `people` (appearances and cameras),
`drawing` (rendering one image), `plan` (which images, split and file names), `folder` (rendering the plan,
the manifest, reuse) and `command` (the command line).
"""

from trinet.demo.command import build_parser, main
from trinet.demo.drawing import apply_camera, draw_person, render_distractor, render_junk, render_person
from trinet.demo.folder import (DEMO_ENTRIES, GENERATOR_VERSION, MANIFEST, DemoDataset, generate,
                                read_manifest)
from trinet.demo.people import VIEWS, Appearance, Camera, make_camera, random_appearance
from trinet.demo.plan import CSV_NAMES, DEFAULTS, MAX_PID
from trinet.demo.world import DEFAULT_WORLD, World, draw_world, resolve_world

__all__ = [
    "CSV_NAMES", "DEFAULTS", "DEFAULT_WORLD", "DEMO_ENTRIES", "GENERATOR_VERSION", "MANIFEST", "MAX_PID",
    "VIEWS", "Appearance", "Camera", "DemoDataset", "World", "apply_camera", "build_parser", "draw_person",
    "draw_world", "generate", "main", "make_camera", "random_appearance", "read_manifest",
    "render_distractor", "render_junk", "render_person", "resolve_world",
]
