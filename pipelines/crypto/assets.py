"""The 14 assets of the G-Research competition and their weights.

Each weight in the competition's `asset_details.csv` is ln(N) for a whole
number N (Bitcoin ln 880 ... Maker ln 3; they sum to 40.88). The weights are
facts of the competition; everything else about an asset that the generator
needs lives in `pipelines.crypto.data`.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Asset:
    asset_id: int
    name: str
    weight_n: int  # the competition weight is ln(weight_n)

    @property
    def weight(self) -> float:
        return math.log(self.weight_n)


ASSETS = (
    Asset(0, "Binance Coin", 74),
    Asset(1, "Bitcoin", 880),
    Asset(2, "Bitcoin Cash", 11),
    Asset(3, "Cardano", 82),
    Asset(4, "Dogecoin", 35),
    Asset(5, "EOS.IO", 4),
    Asset(6, "Ethereum", 363),
    Asset(7, "Ethereum Classic", 8),
    Asset(8, "IOTA", 3),
    Asset(9, "Litecoin", 11),
    Asset(10, "Maker", 3),
    Asset(11, "Monero", 5),
    Asset(12, "Stellar", 8),
    Asset(13, "TRON", 6),
)


def weight_vector() -> np.ndarray:
    """The competition's weights indexed by Asset_ID."""
    vector = np.zeros(max(a.asset_id for a in ASSETS) + 1)
    for asset in ASSETS:
        vector[asset.asset_id] = asset.weight
    return vector
