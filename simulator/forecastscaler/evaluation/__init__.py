"""Model evaluation: the forecast backtest, the anomaly detector's NAB score, trace scoring."""
