"""The checkpoint metadata (config.json contents) that the card and Hub tests share."""

META = {
    "format_version": 1,
    "zoo_version": "0.1.0",
    "family": "toy",
    "config_type": "toy.ToyScoreConfig",
    "config": {"dim": 2, "width": 16},
    "name": "toy-gmm",
    "has_ema": True,
    "training": {
        "steps": 1000,
        "dataset": "toy-gmm",
        "hardware": "2-core CPU",
        "wall_time_s": 12.3,
        "command": "zoo train toy-gmm --steps 1000",
    },
    "metrics": [
        {"name": "test_dsm_loss", "value": 1.23, "dataset": "toy-gmm", "split": "test", "command": "zoo evaluate toy"},
        {"name": "test_nll", "value": 2.5, "dataset": "toy-gmm", "split": "test", "command": "zoo evaluate --nll"},
    ],
    "card": {"license": "mit", "tags": ["score-based"], "summary": "A score model of a 2D Gaussian mixture."},
}
