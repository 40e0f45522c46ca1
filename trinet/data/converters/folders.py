"""The releases with one flat folder of images per split: Market-1501, DukeMTMC-reID and CUHK03-NP (detected
and labeled), which share Market-1501's layout and naming scheme."""

from __future__ import annotations

from trinet.data.converters.layout import Converter, csv_names, folder_converter
from trinet.data.naming import CUHK03NP, DUKE, MARKET1501, MARKET_FOLDERS, MARKET_LABELS, MARKET_MQUERY_FOLDER

CUHK03NP_RELEASE = "the cuhk03-np folder that holds detected/ and labeled/"


def _cuhk03np_folders(subset: str) -> dict[str, str]:
    """split -> folder of one CUHK03-NP subset (`detected` or `labeled`)."""
    return {split: f"{subset}/{folder}" for split, folder in MARKET_FOLDERS.items()}


#: The converters of this family, by registry name.
CONVERTERS: dict[str, Converter] = {
    "market1501": folder_converter(
        "market1501", "Market-1501", "the Market-1501-v15.09.15 folder", csv_names("market1501"),
        {"train": (12936, 751), "query": (3368, 750), "test": (19732, 750)},
        MARKET_FOLDERS, MARKET1501, MARKET_LABELS, ("test",), excluder="market1501",
        multi_query=MARKET_MQUERY_FOLDER),
    "duke": folder_converter(
        "duke", "DukeMTMC-reID", "the DukeMTMC-reID folder",
        {"train": "dukeMTMC_train.csv", "query": "dukeMTMC_query.csv", "test": "dukeMTMC_test.csv"},
        {"train": (16522, 702), "query": (2228, 702), "test": (17661, 1110)},
        MARKET_FOLDERS, DUKE, excluder="duke"),
    "cuhk03-detected": folder_converter(
        "cuhk03-detected", "CUHK03-NP detected", CUHK03NP_RELEASE, csv_names("cuhk03np_detected"),
        {"train": (7365, 767), "query": (1400, 700), "test": (5332, 700)},
        _cuhk03np_folders("detected"), CUHK03NP, excluder="cuhk03"),
    "cuhk03-labeled": folder_converter(
        "cuhk03-labeled", "CUHK03-NP labeled", CUHK03NP_RELEASE, csv_names("cuhk03np_labeled"),
        {"train": (7368, 767), "query": (1400, 700), "test": (5328, 700)},
        _cuhk03np_folders("labeled"), CUHK03NP, excluder="cuhk03"),
}
