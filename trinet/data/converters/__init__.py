"""Dataset converters: official person re-id releases to trinet CSVs, one module per family of releases.

Each converter reads one extracted release (Market-1501, DukeMTMC-reID, CUHK03-NP detected or labeled,
MSMT17, VIPeR, CUHK01) and returns its `pid,path` rows per split: `train`, `query` and `test` (the gallery;
the original triplet-reid names it `test`, as in `market1501_test.csv`). VIPeR and CUHK01 have no fixed
split: their protocol averages 10 trials, each a random half of the identities for training and the other
half for testing (`trials.trial_split`: trial N draws with `numpy.random.RandomState(N)`, whose stream numpy
keeps fixed); the query is the test identities' first camera, the gallery their second. Paths are relative to
the release folder, which becomes `--image_root`, and keep the official file names, because the
evaluation-time excluders parse person and camera from the basename (VIPeR's camera: from its folder).
Junk (`-1`) and distractor (`0000`) images of Market-1501 are kept with their labels, as in the original
CSVs.

Checks, all before anything is written: the folder has the release's layout (else an error naming what is
missing, and the folder nearby that looks right); every image follows the release's naming (else an error
naming the files and the pattern); row and identity counts that differ from the official release are
returned as warnings (a subset is fine). Known clutter (`Thumbs.db`, `desktop.ini`, hidden files such as
`.DS_Store` or `._*`) is skipped and counted. The converters are registered in `registry.CONVERTERS`;
`registry.convert` reads a release. The releases' naming lives in `trinet.data.naming`; combining
training sets, in `trinet.data.combine`.

References: Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015 (Market-1501);
Zheng et al., ICCV 2017 and Ristani et al., ECCVW 2016 (DukeMTMC-reID); Li et al., CVPR 2014 and Zhong et
al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017 (CUHK03-NP); Wei et al.,
"Person Transfer GAN to Bridge Domain Gap for Person Re-Identification", CVPR 2018 (MSMT17); Gray et al.,
"Evaluating Appearance Models for Recognition, Reacquisition, and Tracking", PETS 2007 (VIPeR); Li et al.,
"Human Reidentification with Transferred Metric Learning", ACCV 2012 (CUHK01). See `data/README.md` for
where each release comes from.
"""
