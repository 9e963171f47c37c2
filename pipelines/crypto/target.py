"""The competition's Target: a 15-minute forward return with the market removed.

On the sorted unique timestamps of the data (a minute with no row for an asset
is a missing price, not a skipped step):

    R_a(t)  = Close_a(t+16) / Close_a(t+1) - 1
    M(t)    = sum_a w_a R_a(t) / sum_a w_a     over all 14 weights; a missing R counts as 0
    beta_a  = rolling-3750 mean(M R_a) / rolling-3750 mean(M^2)
    Target  = R_a - beta_a M

The competition documents R as a log return; simple returns are what
reproduces the published Target. A rolling mean over a window that holds a
missing value, or fewer than 3750 rows, is undefined; such a beta is taken as
0 ("if the regression fell over, use beta 0", as in the competition's own
reconstruction), so Target equals R there. Target is missing wherever R is.
"""

import numpy as np
import pandas as pd

HORIZON_FROM = 1  # the return starts one minute after the row (time to act)...
HORIZON_TO = 16   # ...and ends 15 minutes later
BETA_WINDOW = 3750


def compute_target(timestamps: np.ndarray, asset_ids: np.ndarray, close: np.ndarray,
                   weights: np.ndarray, beta_window: int = BETA_WINDOW) -> np.ndarray:
    """Target for each row (same order as the inputs); `weights` is indexed by Asset_ID."""
    grid, position = np.unique(timestamps, return_inverse=True)
    prices = np.full((len(grid), len(weights)), np.nan)
    prices[position, asset_ids] = close

    returns = np.full_like(prices, np.nan)
    if len(grid) > HORIZON_TO:
        returns[:-HORIZON_TO] = prices[HORIZON_TO:] / prices[HORIZON_FROM:HORIZON_FROM - HORIZON_TO] - 1
    market = np.nansum(returns * weights, axis=1) / weights.sum()

    # pandas' rolling mean needs `beta_window` present values, so a gap poisons the window.
    covariance = pd.DataFrame(returns * market[:, None]).rolling(beta_window).mean().to_numpy()
    variance = pd.Series(market * market).rolling(beta_window).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = covariance / variance[:, None]
    beta = np.nan_to_num(beta, nan=0.0, posinf=0.0, neginf=0.0)

    target = returns - beta * market[:, None]
    return target[position, asset_ids]
