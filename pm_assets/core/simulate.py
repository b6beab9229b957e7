"""Simulate a fleet in the Azure Predictive Maintenance format (the five Kaggle tables).

The model, with every figure a field of :class:`SimulationConfig` (defaults calibrated on the real files):

- machines: ids ``1..N``; models in fixed proportions (deterministic counts), ages uniform integers.
- components: each (machine, component) is a renewal process on days, every event at ``event_hour`` (06:00).
  As in the real file, its history before ``start`` is one replacement on a random day of the 15-day grid
  from ``maintenance_history_start``, with no other event until ``start``. From ``start`` on, the part is
  inspected every 15 days after its last replacement, the k-th inspection replacing it with probability
  ``scheduled_replacement_prob[k-1]``; and it wears out: it cannot fail before ``min_failure_age_days``, then
  fails with a constant daily hazard, solved (renewal-reward) so that the component fails ``failure_rate``
  times per machine-year on average, scaled by the machine's model. A failure is also a replacement
  (maintenance row at the same timestamp); every replacement renews the part.
- telemetry: hourly Gaussian readings around a baseline. In a failure's precursor window, the
  ``precursor_hours`` hours before it and the failure hour itself (as in the real data), the matching sensor
  (``COMPONENT_SENSOR``) is shifted. Baseline mean and noise sd are derived so that the overall mean and sd,
  precursor windows included, equal ``sensor_mean`` and ``sensor_sd``.
- errors: one of each matching error type (``COMPONENT_ERRORS``) per failure at a random hour before it, plus
  background errors of every type at uniformly random hours.
- drift (optional): from ``DriftSpec.start`` sensors shift and get noisier, and failures become more frequent.
- observation (optional): only the telemetry hours the public copy of the real file holds (``ObservationSpec``:
  runs around failures, some windows without one, sparse single readings, a complete Q1 for a fifth of the fleet).

Shifts are in units of the sensor's baseline noise sd (its sd in normal operation). Pure numpy/pandas, no
Dagster; the same config always gives identical tables.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from pm_assets.core.atomic import atomic_path, write_bytes_atomic
from pm_assets.core.schema import (
    COMPONENT_ERRORS,
    COMPONENT_SENSOR,
    COMPONENTS,
    DAILY_TABLES,
    ERROR_IDS,
    MODELS,
    SENSORS,
    TABLES,
)

DAYS_PER_YEAR = 365.0  # rates "per machine-year" are per 365 days (2015, the real year)
HOURS_PER_YEAR = 24 * DAYS_PER_YEAR
#: Days of replacement history simulated before the first day (2014-06-01 .. 2015-01-01 in the real file).
HISTORY_DAYS_BEFORE_START = 214
_HOUR = np.timedelta64(1, "h")
_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class DriftSpec:
    """A change of regime from ``start`` on (for monitoring and retraining scenarios)."""

    start: str  # timestamp from which the drift applies, e.g. "2015-07-01"
    sensor_shift_sd: Mapping[str, float] = field(default_factory=dict)  # sensor -> baseline shift, in noise sds
    sensor_scale: Mapping[str, float] = field(default_factory=dict)  # sensor -> multiplier of the noise sd
    failure_rate_factor: float = 1.0  # multiplies every component's (long-run) failure rate
    #: (a, b, rho): b's hourly noise becomes rho z_a + sqrt(1 - rho^2) z_b, with z_a, z_b the two sensors' own
    #: standard normal noise. Every sensor's distribution stays the same; corr(a, b) becomes rho (a correlation-only
    #: drift, which no univariate test sees). a must come before b in SENSORS.
    correlated_noise: tuple[str, str, float] | None = None

    def __post_init__(self) -> None:
        _check_keys("sensor_shift_sd", self.sensor_shift_sd, SENSORS, complete=False)
        _check_keys("sensor_scale", self.sensor_scale, SENSORS, complete=False)
        if self.correlated_noise is not None:
            a, b, rho = self.correlated_noise
            if a not in SENSORS or b not in SENSORS or SENSORS.index(a) >= SENSORS.index(b) or not -1 <= rho <= 1:
                raise ValueError(
                    f"correlated_noise {self.correlated_noise!r}: two sensors in SENSORS order and -1 <= rho <= 1"
                )
        if self.failure_rate_factor < 0 or any(v <= 0 for v in self.sensor_scale.values()):
            raise ValueError("failure_rate_factor must be >= 0 and sensor scales > 0")


@dataclass(frozen=True)
class ObservationSpec:
    """Which telemetry hours are kept, as in the public copy of the real telemetry (an option: a
    ``SimulationConfig.observation``; None keeps every hour).

    The union file of ``../shared/data/azure_pm/partial`` (144,262 of the 876,100 real hours) is not a sample of
    normal operation: it is runs of hours around failures, some windows without a failure, one reading every 200 h,
    and the complete Q1 of machines 1-20. Each default is measured on it (``profile.observed_runs`` reads the
    figures back; README, "Simulator vs the real files"):

    - around each failure at ``t`` the hours ``[t - b, t + hours_after_failure]``, ``b`` drawn from
      ``hours_before_failure`` (inclusive ranges of hours with weights: the real counts of the 685 failure hours
      outside the Q1 runs; the median is 77 h, and 191 of them have only 21-26 h); 655 of the 719 real runs holding a
      failure end 26 h after it;
    - ``windows_per_machine_year`` runs of ``window_hours`` hours at random hours: real 641 runs of 50 h (694 runs
      of 2 h or more holding no failure, 6.9 per machine-year); 8.5 rather than 6.9 because a quarter of random
      windows overlap a failure's run or another window, or fall on the complete machines (simulated: 6.5-7.1
      such runs per machine-year, seeds 42, 1, 2, 3);
    - one reading every ``single_every_hours`` hours from a random offset per machine, each kept with probability
      ``single_keep`` (real: 3,665 single hours, 36.7 per machine-year; 3,114 of the gaps between consecutive ones
      are 200 h, 422 are 400: the grid less the points that fall inside another run, so 1);
    - the first ``complete_machine_share`` of the machines complete until ``complete_until`` (real: machines 1-20
      until 2015-04-01 05:00, the Q1 subset, which the union file holds too).
    """

    hours_before_failure: tuple[tuple[int, int, float], ...] = (
        (21, 24, 20),
        (25, 26, 171),
        (49, 70, 60),
        (71, 80, 218),
        (81, 90, 107),
        (91, 100, 82),
        (101, 150, 25),
        (151, 300, 2),
    )
    hours_after_failure: int = 26
    windows_per_machine_year: float = 8.5
    window_hours: int = 50
    single_every_hours: int = 200
    single_keep: float = 1.0
    complete_machine_share: float = 0.2
    complete_until: str | None = "2015-04-01 06:00"  # exclusive; None: no complete machines

    def __post_init__(self) -> None:
        ranges = self.hours_before_failure
        if not ranges or any(not 0 <= lo <= hi or w < 0 for lo, hi, w in ranges) or sum(w for *_, w in ranges) <= 0:
            raise ValueError("hours_before_failure: (lo, hi, weight) with 0 <= lo <= hi, weights >= 0, some > 0")
        if self.hours_after_failure < 0 or self.windows_per_machine_year < 0 or self.window_hours < 1:
            raise ValueError("hours_after_failure, windows_per_machine_year must be >= 0, window_hours >= 1")
        if self.single_every_hours < 1 or not 0 <= self.single_keep <= 1 or not 0 <= self.complete_machine_share <= 1:
            raise ValueError("single_every_hours >= 1, single_keep and complete_machine_share in [0, 1]")


#: The real file's ages (years) of each model's machines, one entry per machine (model4 is younger): what the
#: simulator draws from by default.
# fmt: off
REAL_AGES_BY_MODEL: dict[str, tuple[int, ...]] = {
    "model1": (2, 3, 5, 7, 10, 11, 14, 14, 14, 15, 15, 16, 16, 17, 17, 20),
    "model2": (2, 4, 6, 6, 10, 10, 10, 12, 14, 14, 16, 18, 18, 18, 19, 20, 20),
    "model3": (1, 2, 2, 3, 5, 6, 7, 7, 8, 9, 9, 9, 9, 10, 10, 11, 14, 14, 14, 14, 14, 14, 15, 15, 16, 17, 17, 17,
               17, 18, 18, 19, 20, 20, 20),
    "model4": (0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 7, 7, 9, 10, 10, 10, 10, 12, 14, 14, 14, 15, 15, 16, 17, 18,
               19, 19, 20),
}
# fmt: on


@dataclass(frozen=True)
class SimulationConfig:
    """Everything the simulator uses. Defaults reproduce the real 2015 fleet (100 machines)."""

    machines: int = 100
    start: str = "2015-01-01"  # first telemetry hour
    end: str = "2016-01-01"  # exclusive: the last telemetry hour is end - 1h
    seed: int = 42
    # first day of the one replacement before start; None: 214 days before start (the real file: 2014-06-01 for 2015)
    maintenance_history_start: str | None = None
    drift: DriftSpec | None = None

    # Machines. Real: model1 16, model2 17, model3 35, model4 32 of 100; ages 0..20 years.
    model_mix: Mapping[str, float] = field(
        default_factory=lambda: {"model1": 0.16, "model2": 0.17, "model3": 0.35, "model4": 0.32}
    )
    age_range: tuple[int, int] = (0, 20)  # inclusive; used where ages_by_model is None
    # Ages drawn, per model, from these (default: the real file's, REAL_AGES_BY_MODEL).
    ages_by_model: Mapping[str, tuple[int, ...]] | None = field(default_factory=lambda: dict(REAL_AGES_BY_MODEL))

    # Telemetry: overall mean and sd of each sensor, precursor windows included (published full-file figures).
    sensor_mean: Mapping[str, float] = field(
        default_factory=lambda: {"volt": 170.8, "rotate": 446.6, "pressure": 100.9, "vibration": 40.4}
    )
    sensor_sd: Mapping[str, float] = field(
        default_factory=lambda: {"volt": 15.5, "rotate": 52.7, "pressure": 11.0, "vibration": 5.4}
    )

    # Failures per machine-year, fleet average at model_mix. Real 2015: 192, 259, 131, 179 for 100 machines.
    failure_rate: Mapping[str, float] = field(
        default_factory=lambda: {"comp1": 1.92, "comp2": 2.59, "comp3": 1.31, "comp4": 1.79}
    )
    # Which machines a component fails on. Real 2015: comp3 never fails on model3 or model4, comp4 never below
    # age 14; comp1 and comp2 fail at the same rate on every model and age. That alone gives the real failures per
    # machine-year by model (model1 11.8, model2 9.9, model3 6.3, model4 5.7) and by age. A component's rate on
    # the machines it fails on is failure_rate / the expected share of such machines (so the fleet average stays).
    component_models: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"comp3": ("model1", "model2")})
    component_min_age: Mapping[str, int] = field(default_factory=lambda: {"comp4": 14})
    # A further relative failure rate per model (normalised over model_mix); 1 everywhere: the rules above suffice.
    model_failure_factor: Mapping[str, float] = field(
        default_factory=lambda: {"model1": 1.0, "model2": 1.0, "model3": 1.0, "model4": 1.0}
    )
    # Co-failures: this share of failures brings down a second component of the machine at the same hour, drawn
    # with these weights among the pairs that hold the first (and that the machine's components can fail in).
    # Real 2015: 42 machine-hours with two failures (84 of the 761: 11.0 %), i.e. 42 of 719 failure events; 0.048
    # rather than 42 / 719 because independent failures on the same day already give ~1 % (400-machine fleets,
    # seeds 7 and 8: 11.4 % and 10.7 %).
    co_failure_share: float = 0.048
    co_failure_pairs: Mapping[tuple[str, str], float] = field(
        default_factory=lambda: {
            ("comp2", "comp4"): 14,
            ("comp1", "comp2"): 9,
            ("comp1", "comp4"): 6,
            ("comp1", "comp3"): 5,
            ("comp2", "comp3"): 4,
            ("comp3", "comp4"): 4,
        }
    )
    # Wear-out: a part fails no earlier than this many days after its replacement (real: the shortest gap
    # ending in a failure is 26 days, the median 75).
    min_failure_age_days: int = 26
    event_hour: int = 6  # hour of day of every replacement and failure

    # Scheduled replacements: inspections every step days after the last replacement; the k-th inspection
    # replaces the part with probability scheduled_replacement_prob[k-1] (the last value for later ones).
    # Real 2015 estimates (failures and the year end as censoring): 0.315, 0.247, then ~0.16. The first two are
    # lowered to 0.30 and 0.20 because simulated failures fall on any day while 77 % of real ones fall on the
    # 15-day grid. Shares of gaps <= 15, 30, 45 days: simulated (seeds 42, 1, 2) 0.29-0.31, 0.46-0.47, 0.59-0.60,
    # real 0.30, 0.48, 0.61; median 36-41 days (real 45: with failures on the grid, the median jumps from 30
    # straight to 45).
    scheduled_gap_step_days: int = 15
    scheduled_replacement_prob: tuple[float, ...] = (0.30, 0.20, 0.16)

    # Precursors: readings in [t - precursor_hours, t] of a failure at t shift by this many noise sds.
    # Measured on the real union + Q1 telemetry with profile.precursor_zshift (the README rounds them to
    # 1.2, -1.4, 2.1, 1.9; comp3 is nearer 2.35).
    precursor_hours: int = 48
    # Since excursions (below) shift some clean hours too, the reference of that measure is wider than the noise:
    # the shifts are 7.5 % larger than it reads, so that it reads the real figures again.
    precursor_shift_sd: Mapping[str, float] = field(
        default_factory=lambda: {"comp1": 1.42, "comp2": -1.65, "comp3": 2.52, "comp4": 2.08}
    )
    # Each window (a precursor or an excursion) has its own shift: the one above plus a normal draw of this sd.
    # Real per-failure shifts of the 24 h mean before a failure spread by 0.27-0.37 sd across failures where
    # independent noise gives 0.19: sqrt(0.32^2 - 0.19^2) ~ 0.26 (comp4: 0.32).
    precursor_shift_spread_sd: Mapping[str, float] = field(
        default_factory=lambda: {"comp1": 0.26, "comp2": 0.19, "comp3": 0.26, "comp4": 0.32}
    )
    # Excursions: episodes just like a precursor window (precursor_hours + 1 hours, the matching sensor shifted by
    # the component's precursor shift) with no failure and no error, at random hours: this many per machine-year
    # per sensor. The real Q1 telemetry has them: 2.1-4.3 % of its clean snapshots (no failure in the next 72 h)
    # have a 24 h mean beyond half a precursor shift, in episodes of ~45 h whose extreme is the precursor's own
    # shift (volt +1.36 sd, rotate -1.48, pressure +2.27, vibration +1.84); independent hours give 0.2-1.9 %.
    # They also make the hours autocorrelated (lag 1 h: 0.07-0.14, as in the real file) and the sd of 24 h means
    # on clean snapshots 1.4-1.75x that of independent hours, as in the real file; no other noise structure is
    # needed for either (README, "Simulator vs the real files").
    excursion_rate: Mapping[str, float] = field(
        default_factory=lambda: {"volt": 6.1, "rotate": 8.0, "pressure": 3.6, "vibration": 3.9}
    )
    # Gaps in the telemetry (an option; none by default): this many per machine-year, each missing a run of hours
    # of geometric length with this mean. The complete real file has none (876,100 rows = 100 machines x 8,761
    # hours); its public copies here do (the union file by construction), and the pipeline must handle them.
    gaps_per_machine_year: float = 0.0
    gap_mean_hours: float = 12.0
    # Telemetry observed as in the public copy of the real file (ObservationSpec; an option, None by default): what
    # benchmarks/sim_to_real.py trains on, since the real snapshots it scores are observed so.
    observation: ObservationSpec | None = None
    # Each precursor error comes lag hours before its failure, lag uniform in this inclusive range. The real
    # files put 999 of the 1,028 matching errors in the 48 h before a failure exactly 24 h before it.
    precursor_error_lag_hours: tuple[int, int] = (24, 24)
    # Background errors per machine-year by type: real totals (1010, 988, 838, 727, 356) minus one precursor
    # error per failure of the matching component.
    background_error_rate: Mapping[str, float] = field(
        default_factory=lambda: {"error1": 8.18, "error2": 7.29, "error3": 5.79, "error4": 5.96, "error5": 1.77}
    )

    def __post_init__(self) -> None:
        _check_keys("model_mix", self.model_mix, MODELS)
        _check_keys("model_failure_factor", self.model_failure_factor, MODELS)
        if self.ages_by_model is not None:
            _check_keys("ages_by_model", self.ages_by_model, MODELS)
        _check_keys("component_models", self.component_models, COMPONENTS, complete=False)
        _check_keys("component_min_age", self.component_min_age, COMPONENTS, complete=False)
        pairs = {c for pair in self.co_failure_pairs for c in pair}
        if not pairs <= set(COMPONENTS) or not 0 <= self.co_failure_share < 1:
            raise ValueError("co_failure_pairs must name components, co_failure_share be in [0, 1)")
        _check_keys("sensor_mean", self.sensor_mean, SENSORS)
        _check_keys("sensor_sd", self.sensor_sd, SENSORS)
        _check_keys("failure_rate", self.failure_rate, COMPONENTS)
        _check_keys("precursor_shift_sd", self.precursor_shift_sd, COMPONENTS)
        _check_keys("precursor_shift_spread_sd", self.precursor_shift_spread_sd, COMPONENTS)
        _check_keys("excursion_rate", self.excursion_rate, SENSORS)
        if any(v < 0 for v in self.excursion_rate.values()):
            raise ValueError("excursion_rate values must be >= 0")
        if self.gaps_per_machine_year < 0 or self.gap_mean_hours < 1:
            raise ValueError("gaps_per_machine_year must be >= 0 and gap_mean_hours >= 1")
        _check_keys("background_error_rate", self.background_error_rate, ERROR_IDS)
        if self.maintenance_history_start is None:
            default = pd.Timestamp(self.start).normalize() - pd.Timedelta(days=HISTORY_DAYS_BEFORE_START)
            object.__setattr__(self, "maintenance_history_start", default.strftime("%Y-%m-%d"))
        history, start, end = (pd.Timestamp(t) for t in (self.maintenance_history_start, self.start, self.end))
        if not history < start < end:
            raise ValueError("need maintenance_history_start < start < end")
        if start != start.floor("h") or end != end.floor("h"):
            raise ValueError("start and end must be on the hour")
        if self.machines < 1:
            raise ValueError("machines must be >= 1")
        if not self.scheduled_replacement_prob or not all(0 < p <= 1 for p in self.scheduled_replacement_prob):
            raise ValueError("scheduled_replacement_prob must be a non-empty sequence of values in (0, 1]")
        if self.scheduled_gap_step_days < 1 or self.min_failure_age_days < 1:
            raise ValueError("scheduled_gap_step_days and min_failure_age_days must be >= 1")
        lo, hi = self.precursor_error_lag_hours
        if not 1 <= lo <= hi:
            raise ValueError("precursor_error_lag_hours must satisfy 1 <= lo <= hi")


def _check_keys(name: str, mapping: Mapping[str, float], allowed: tuple[str, ...], complete: bool = True) -> None:
    unknown = set(mapping) - set(allowed)
    missing = set(allowed) - set(mapping) if complete else set()
    if unknown or missing:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")


def sensor_baseline(config: SimulationConfig) -> pd.DataFrame:
    """Baseline mean and noise sd per sensor (index sensor, columns mean, sd), before drift.

    With a fraction ``f`` of hours shifted by ``k`` noise sds on average (``spread`` sd across windows), the overall
    mean is ``mean + f*k*sd`` and the overall variance ``sd**2 * (1 + f*(k**2 + spread**2) - (f*k)**2)``; both are
    solved for the configured overall figures.
    """
    rows = {}
    for comp, sensor in COMPONENT_SENSOR.items():
        windows = config.failure_rate[comp] + config.excursion_rate[sensor]  # shifted windows per machine-year
        f = windows * (config.precursor_hours + 1) / HOURS_PER_YEAR
        k, spread = config.precursor_shift_sd[comp], config.precursor_shift_spread_sd[comp]
        sd = config.sensor_sd[sensor] / np.sqrt(1 + f * (k**2 + spread**2) - (f * k) ** 2)
        rows[sensor] = (config.sensor_mean[sensor] - f * k * sd, sd)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "sd"]).loc[list(SENSORS)]


def simulate(config: SimulationConfig | None = None) -> dict[str, pd.DataFrame]:
    """Simulate the five tables ("machines", "telemetry", "errors", "maintenance", "failures")."""
    config = config or SimulationConfig()
    # independent streams per part (the later ones added without changing the earlier ones' draws)
    seeds = np.random.SeedSequence(config.seed).spawn(8)
    rng_machines, rng_components, rng_telemetry, rng_errors, rng_co, rng_excursions, rng_gaps, rng_observed = (
        np.random.default_rng(s) for s in seeds
    )

    machines = _simulate_machines(config, rng_machines)
    maintenance, failures = _simulate_components(config, machines, rng_components, rng_co)
    telemetry = _simulate_telemetry(config, failures, rng_telemetry, rng_excursions, rng_gaps)
    if config.observation is not None:
        telemetry = telemetry[_observed(config, config.observation, failures, rng_observed).ravel()]
        telemetry = telemetry.reset_index(drop=True)
    errors = _simulate_errors(config, failures, rng_errors)
    return {
        "machines": machines,
        "telemetry": telemetry,
        "errors": errors,
        "maintenance": maintenance,
        "failures": failures,
    }


def _model_counts(n: int, mix: Mapping[str, float]) -> np.ndarray:
    """Machines per model in MODELS order: proportional to ``mix``, largest remainders round up."""
    share = np.array([mix[m] for m in MODELS], dtype=float)
    exact = n * share / share.sum()
    counts = np.floor(exact).astype(int)
    by_remainder = np.argsort(-(exact - counts), kind="stable")
    counts[by_remainder[: n - counts.sum()]] += 1
    return counts


def _simulate_machines(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    codes = rng.permutation(np.repeat(np.arange(len(MODELS)), _model_counts(config.machines, config.model_mix)))
    lo, hi = config.age_range
    ages = rng.integers(lo, hi + 1, size=config.machines).astype(np.int64)
    if config.ages_by_model is not None:
        draws = rng.random(config.machines)
        for code, model in enumerate(MODELS):
            choices = np.asarray(config.ages_by_model[model], dtype=np.int64)
            here = codes == code
            ages[here] = choices[(draws[here] * len(choices)).astype(np.int64)]
    return pd.DataFrame(
        {
            "machineID": np.arange(1, config.machines + 1, dtype=np.int32),
            "model": pd.Categorical.from_codes(codes, categories=list(MODELS)),
            "age": ages,
        }
    )


def fails_on(config: SimulationConfig, models: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """(machines x components) True where the component can fail on the machine (model codes, ages)."""
    out = np.ones((len(models), len(COMPONENTS)), dtype=bool)
    for c, comp in enumerate(COMPONENTS):
        if comp in config.component_models:
            out[:, c] &= np.isin(models, [MODELS.index(m) for m in config.component_models[comp]])
        out[:, c] &= ages >= config.component_min_age.get(comp, 0)
    return out


def _eligible_share(config: SimulationConfig) -> np.ndarray:
    """The expected share of machines each component can fail on, at model_mix and the age distributions."""
    mix = np.array([config.model_mix[m] for m in MODELS], dtype=float)
    share = np.zeros(len(COMPONENTS))
    for code, model in enumerate(MODELS):
        ages = np.asarray(
            config.ages_by_model[model]
            if config.ages_by_model is not None
            else np.arange(config.age_range[0], config.age_range[1] + 1)
        )
        share += mix[code] / mix.sum() * fails_on(config, np.full(len(ages), code), ages).mean(axis=0)
    return share


def _co_failure_partners(config: SimulationConfig) -> np.ndarray:
    """(components x components) weights of the partner of a co-failure, by first component."""
    weights = np.zeros((len(COMPONENTS), len(COMPONENTS)))
    for (a, b), w in config.co_failure_pairs.items():
        i, j = COMPONENTS.index(a), COMPONENTS.index(b)
        weights[i, j] += w
        weights[j, i] += w
    return weights


def _independent_rates(config: SimulationConfig) -> np.ndarray:
    """Failure rates of the components' own hazards: the configured rates less the failures co-failures add
    (each independent failure brings a partner with probability co_failure_share)."""
    rates = np.array([config.failure_rate[c] for c in COMPONENTS])
    weights = _co_failure_partners(config)
    partner = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)  # P(partner | first)
    # rates = independent + share * partner^T independent
    return np.linalg.solve(np.eye(len(COMPONENTS)) + config.co_failure_share * partner.T, rates)


def _ns(ts: str | pd.Timestamp) -> np.datetime64:
    return pd.Timestamp(ts).to_datetime64().astype("datetime64[ns]")


def _event_days(config: SimulationConfig) -> tuple[np.ndarray, int]:
    """Timestamps of the daily event hour from the history start to ``end`` and the index of the first >= start."""
    first = _ns(pd.Timestamp(config.maintenance_history_start).normalize()) + config.event_hour * _HOUR
    if first < _ns(config.maintenance_history_start):
        first += _DAY
    n_days = int(np.ceil((_ns(config.end) - first) / _DAY))
    days = first + np.arange(n_days) * _DAY
    first_day = int(np.searchsorted(days, _ns(config.start)))
    if first_day == 0:
        raise ValueError("maintenance_history_start leaves no replacement day before start")
    return days, first_day


def _simulate_components(
    config: SimulationConfig, machines: pd.DataFrame, rng: np.random.Generator, co_rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Maintenance (every replacement) and failures (the replacements by failure, all from ``start`` on)."""
    days, first_day = _event_days(config)
    factor = np.array([config.model_failure_factor[m] for m in MODELS])
    mix = np.array([config.model_mix[m] for m in MODELS])
    per_model = factor / (factor @ mix / mix.sum())  # fleet average 1 at model_mix
    # Target failures per day by (model, component) on the machines that part fails on, before and after the drift
    # start; a hazard for each.
    own = _independent_rates(config) / np.maximum(_eligible_share(config), 1e-12)
    per_day = per_model[:, None] * own / DAYS_PER_YEAR
    drift_factor = 1.0 if config.drift is None else config.drift.failure_rate_factor
    hazard = _daily_failure_hazard(np.stack([per_day, per_day * drift_factor]), config)
    after_drift = np.zeros(len(days) - first_day, dtype=np.int64)
    if config.drift is not None:
        after_drift[days[first_day:] >= _ns(config.drift.start)] = 1
    models = machines["model"].cat.codes.to_numpy()
    eligible = fails_on(config, models, machines["age"].to_numpy())
    fail_prob = hazard[after_drift[None, None, :], models[:, None, None], np.arange(len(COMPONENTS))[None, :, None]]
    fails = (rng.random(fail_prob.shape) < fail_prob) & eligible[:, :, None]  # used if the part is old enough
    partners = _co_failure_partners(config)

    step = config.scheduled_gap_step_days
    history_slots = -(-first_day // step)  # grid days before start: 0, step, 2*step, ...
    rows: list[tuple[int, int, int, bool]] = []  # (machine index, component index, day index, failed)
    n_comp = len(COMPONENTS)
    for m in range(config.machines):
        # the four parts of a machine in time order, so that a failure can bring down a second part with it
        last = [step * int(rng.integers(history_slots)) for _ in range(n_comp)]
        for c in range(n_comp):
            rows.append((m, c, last[c], False))
        scheduled = [_next_scheduled(rng, last[c], first_day, config) for c in range(n_comp)]
        fail_days = [first_day + np.flatnonzero(fails[m, c]) for c in range(n_comp)]
        at = [0] * n_comp
        while True:
            upcoming = []
            for c in range(n_comp):
                days_c = fail_days[c]
                while at[c] < len(days_c) and days_c[at[c]] < last[c] + config.min_failure_age_days:
                    at[c] += 1
                next_fail = days_c[at[c]] if at[c] < len(days_c) else len(days)
                upcoming.append((next_fail, True) if next_fail <= scheduled[c] else (scheduled[c], False))
            c = min(range(n_comp), key=lambda k: upcoming[k][0])
            day, failed = upcoming[c]
            if day >= len(days):
                break
            renewed = [c]
            if failed and co_rng.random() < config.co_failure_share:
                weights = partners[c] * eligible[m]
                if weights.sum() > 0:
                    renewed.append(int(co_rng.choice(n_comp, p=weights / weights.sum())))
            for k in renewed:
                rows.append((m, k, int(day), failed))
                last[k], scheduled[k] = int(day), _next_scheduled(rng, int(day), int(day) + 1, config)

    m_idx, c_idx, d_idx, failed = (np.array(col, dtype=np.int64) for col in zip(*rows))
    failed = failed.astype(bool)
    ids = machines["machineID"].to_numpy()
    maintenance = _event_frame(ids[m_idx], days[d_idx], "comp", c_idx, COMPONENTS)
    failures = _event_frame(ids[m_idx[failed]], days[d_idx[failed]], "failure", c_idx[failed], COMPONENTS)
    return maintenance, failures


def _daily_failure_hazard(per_day: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Daily failure probabilities (for parts old enough to fail) that give ``per_day`` failures per day.

    Renewal-reward: failures per day = expected failures per renewal cycle / expected cycle length, where a
    cycle ends at the first scheduled replacement or failure. That rate increases with the hazard, which is
    found by bisection (capped at 1 per day).
    """
    step, probs = config.scheduled_gap_step_days, config.scheduled_replacement_prob
    horizon = 20 * int(DAYS_PER_YEAR)  # survival to 20 years is negligible (default: < 0.84 ** 480)
    age = np.arange(1, horizon + 1)
    check_probs = np.array([probs[min(k, len(probs)) - 1] for k in range(1, horizon // step + 1)])
    no_check_yet = np.concatenate([[1.0], np.cumprod(1 - check_probs)])[age // step]  # P(no scheduled by age)
    can_fail = age >= config.min_failure_age_days
    ages_at_risk = np.cumsum(can_fail)  # days with a failure chance up to each age

    def rate(p: np.ndarray) -> np.ndarray:
        survival = no_check_yet * (1 - p[..., None]) ** ages_at_risk  # P(cycle longer than age)
        at_risk = np.concatenate([np.ones(p.shape + (1,)), survival[..., :-1]], axis=-1)  # P(cycle >= age)
        return p * (at_risk * can_fail).sum(-1) / (1 + survival.sum(-1))

    lo, hi = np.zeros_like(per_day), np.ones_like(per_day)
    for _ in range(60):
        mid = (lo + hi) / 2
        too_low = rate(mid) < per_day
        lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
    return hi


def _next_scheduled(rng: np.random.Generator, last: int, earliest: int, config: SimulationConfig) -> int:
    """Day of the first inspection at or after ``earliest`` that replaces a part last replaced on ``last``."""
    step, probs = config.scheduled_gap_step_days, config.scheduled_replacement_prob
    k = max(1, -(-(earliest - last) // step))  # inspections before earliest do not replace
    while rng.random() >= probs[min(k, len(probs)) - 1]:
        k += 1
    return last + step * k


def _event_frame(
    machine_ids: np.ndarray, times: np.ndarray, column: str, codes: np.ndarray, categories: tuple[str, ...]
) -> pd.DataFrame:
    """An event table with schema dtypes, without duplicate keys, sorted by (machineID, datetime, category)."""
    frame = pd.DataFrame(
        {
            "datetime": np.asarray(times, dtype="datetime64[ns]"),
            "machineID": np.asarray(machine_ids, dtype=np.int32),
            column: pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(categories)),
        }
    )
    frame = frame.drop_duplicates().sort_values(["machineID", "datetime", column], kind="stable")
    return frame.reset_index(drop=True)


def _hour_index(times: np.ndarray, config: SimulationConfig) -> np.ndarray:
    return ((times - _ns(config.start)) // _HOUR).astype(np.int64)


def _simulate_telemetry(
    config: SimulationConfig,
    failures: pd.DataFrame,
    rng: np.random.Generator,
    excursion_rng: np.random.Generator,
    gap_rng: np.random.Generator,
) -> pd.DataFrame:
    n, hours = config.machines, int((_ns(config.end) - _ns(config.start)) // _HOUR)
    baseline = sensor_baseline(config)
    drift_from = hours
    if config.drift is not None:
        drift_from = int(np.clip(np.ceil((_ns(config.drift.start) - _ns(config.start)) / _HOUR), 0, hours))

    fail_row = failures["machineID"].to_numpy(dtype=np.int64) - 1
    fail_hour = _hour_index(failures["datetime"].to_numpy(), config)
    window = np.arange(-config.precursor_hours, 1)
    sensor_comp = {s: c for c, s in COMPONENT_SENSOR.items()}

    columns: dict[str, np.ndarray] = {}
    correlated = config.drift.correlated_noise if config.drift is not None else None
    for sensor in SENSORS:
        mean, sd = baseline.loc[sensor, "mean"], baseline.loc[sensor, "sd"]
        noise_sd = np.full(hours, sd)
        level = np.full(hours, mean)
        if config.drift is not None:
            noise_sd[drift_from:] *= config.drift.sensor_scale.get(sensor, 1.0)
            level[drift_from:] += config.drift.sensor_shift_sd.get(sensor, 0.0) * sd
        noise = rng.standard_normal((n, hours))
        if correlated is not None and sensor == correlated[0]:
            leading = noise[:, drift_from:].copy()
        elif correlated is not None and sensor == correlated[1]:
            rho = correlated[2]
            noise[:, drift_from:] = rho * leading + np.sqrt(1 - rho * rho) * noise[:, drift_from:]
        values = level + noise * noise_sd

        comp = sensor_comp[sensor]
        is_comp = (failures["failure"] == comp).to_numpy()
        # excursions: the same windows at random hours, without a failure
        counts = excursion_rng.poisson(config.excursion_rate[sensor] * hours / HOURS_PER_YEAR, size=n)
        ends = np.concatenate([fail_hour[is_comp], excursion_rng.integers(0, hours, size=int(counts.sum()))])
        machine = np.concatenate([fail_row[is_comp], np.repeat(np.arange(n), counts)])
        base = config.precursor_shift_sd[comp]
        size = np.abs(base + excursion_rng.normal(0.0, config.precursor_shift_spread_sd[comp], size=len(ends)))
        rows = np.repeat(machine, len(window))
        cols = (ends[:, None] + window[None, :]).ravel()
        inside = (cols >= 0) & (cols < hours)
        shift = np.zeros((n, hours))  # where windows overlap, the larger shift (once)
        np.maximum.at(shift, (rows[inside], cols[inside]), np.repeat(size, len(window))[inside])
        values += np.sign(base) * shift * sd
        columns[sensor] = values.ravel()

    times = _ns(config.start) + np.arange(hours) * _HOUR
    frame = pd.DataFrame(
        {
            "datetime": np.tile(times, n),
            "machineID": np.repeat(np.arange(1, n + 1, dtype=np.int32), hours),
            **columns,
        }
    )
    if config.gaps_per_machine_year > 0:
        counts = gap_rng.poisson(config.gaps_per_machine_year * hours / HOURS_PER_YEAR, size=n)
        machine = np.repeat(np.arange(n), counts)
        first = gap_rng.integers(0, hours, size=len(machine))
        length = gap_rng.geometric(1.0 / max(config.gap_mean_hours, 1.0), size=len(machine))
        missing = np.zeros((n, hours), dtype=bool)
        offsets = np.concatenate([np.arange(k) for k in length]) if len(length) else np.zeros(0, np.int64)
        cols = np.repeat(first, length) + offsets
        inside = cols < hours
        missing[np.repeat(machine, length)[inside], cols[inside]] = True
        frame = frame[~missing.ravel()].reset_index(drop=True)
    return frame


def _observed(
    config: SimulationConfig, spec: ObservationSpec, failures: pd.DataFrame, rng: np.random.Generator
) -> np.ndarray:
    """(machines x hours) True for the telemetry hours ``spec`` keeps (see :class:`ObservationSpec`)."""
    n, hours = config.machines, int((_ns(config.end) - _ns(config.start)) // _HOUR)
    # runs [first, last) per machine, marked +1 / -1 on a difference array
    fail_hour = _hour_index(failures["datetime"].to_numpy(), config)
    lo, hi, weight = (np.array(col, dtype=float) for col in zip(*spec.hours_before_failure))
    pick = rng.choice(len(weight), size=len(fail_hour), p=weight / weight.sum())
    before = np.floor(lo[pick] + rng.random(len(fail_hour)) * (hi[pick] - lo[pick] + 1)).astype(np.int64)
    counts = rng.poisson(spec.windows_per_machine_year * hours / HOURS_PER_YEAR, size=n)
    window_first = rng.integers(0, hours, size=int(counts.sum()))
    machine = np.concatenate([failures["machineID"].to_numpy(np.int64) - 1, np.repeat(np.arange(n), counts)])
    first = np.concatenate([fail_hour - before, window_first])
    last = np.concatenate([fail_hour + spec.hours_after_failure + 1, window_first + spec.window_hours])
    marks = np.zeros((n, hours + 1), dtype=np.int64)
    np.add.at(marks, (machine, np.clip(first, 0, hours)), 1)
    np.add.at(marks, (machine, np.clip(last, 0, hours)), -1)
    kept = np.cumsum(marks, axis=1)[:, :hours] > 0
    offset = rng.integers(0, spec.single_every_hours, size=n)
    grid = offset[:, None] + spec.single_every_hours * np.arange(-(-hours // spec.single_every_hours))[None, :]
    single = (grid < hours) & (rng.random(grid.shape) < spec.single_keep)
    kept[np.repeat(np.arange(n), grid.shape[1])[single.ravel()], grid[single]] = True
    if spec.complete_until is not None:
        until = int(np.clip((_ns(spec.complete_until) - _ns(config.start)) // _HOUR, 0, hours))
        kept[: int(round(spec.complete_machine_share * n)), :until] = True
    return kept


def _simulate_errors(config: SimulationConfig, failures: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    start, hours = _ns(config.start), int((_ns(config.end) - _ns(config.start)) // _HOUR)
    error_code = {e: i for i, e in enumerate(ERROR_IDS)}

    # Precursors: one error of each matching type per failure, lag hours before it.
    fail_ids = failures["machineID"].to_numpy()
    fail_times = failures["datetime"].to_numpy()
    fail_comps = failures["failure"].astype(str).to_numpy()
    lo, hi = config.precursor_error_lag_hours
    pre_ids, pre_times, pre_codes = [], [], []
    for comp, error_ids in COMPONENT_ERRORS.items():
        is_comp = fail_comps == comp
        for error_id in error_ids:
            lag = rng.integers(lo, hi + 1, size=int(is_comp.sum()))
            pre_ids.append(fail_ids[is_comp])
            pre_times.append(fail_times[is_comp] - lag * _HOUR)
            pre_codes.append(np.full(int(is_comp.sum()), error_code[error_id]))

    # Background: Poisson counts per (machine, type), uniform hours.
    rates = np.array([config.background_error_rate[e] for e in ERROR_IDS]) * hours / HOURS_PER_YEAR
    counts = rng.poisson(rates, size=(config.machines, len(ERROR_IDS))).ravel()
    cells = np.repeat(np.arange(counts.size), counts)
    bg_times = start + rng.integers(0, hours, size=cells.size) * _HOUR

    ids = np.concatenate([*pre_ids, cells // len(ERROR_IDS) + 1])
    times = np.concatenate([*pre_times, bg_times])
    codes = np.concatenate([*pre_codes, cells % len(ERROR_IDS)])
    keep = times >= start  # precursors of the first failures may fall before the telemetry starts
    return _event_frame(ids[keep], times[keep], "errorID", codes[keep], ERROR_IDS)


def write_kaggle_csv(
    tables: Mapping[str, pd.DataFrame], out_dir: str | Path, compress: bool = False, suffix: str = ""
) -> dict[str, Path]:
    """Write the tables as Kaggle files (``PdM_<name><suffix>.csv``, ``.csv.gz`` when ``compress``); returns
    name -> path.

    The exact Kaggle format: double-quoted header and string values, unquoted numbers, timestamps as
    ``2015-01-01 06:00:00``, floats at shortest round-trip precision, CRLF after every line. Each file is
    written atomically; gzip files carry no timestamp, so equal tables give equal bytes.
    """
    out_dir = Path(out_dir)
    options = pa_csv.WriteOptions(quoting_style="needed", eol="\r\n")  # "needed" quotes every string value
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        spec = TABLES[name]
        arrays = {}
        for column in spec.columns:
            values = frame[column]
            if spec.kinds[column] == "timestamp":
                arrays[column] = pa.array(values.to_numpy(dtype="datetime64[s]"))
            elif spec.kinds[column] == "category":
                arrays[column] = pa.array(values.astype(str).to_numpy(), type=pa.string())
            else:
                arrays[column] = pa.array(values.to_numpy())
        table = pa.table(arrays)
        target = out_dir / f"{spec.file_stem}{suffix}.csv{'.gz' if compress else ''}"
        with atomic_path(target) as tmp:
            if compress:
                with open(tmp, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as stream:  # no name, no time
                    pa_csv.write_csv(table, stream, options)
            else:
                pa_csv.write_csv(table, str(tmp), options)
        paths[name] = target
    return paths


def day_tables(tables: Mapping[str, pd.DataFrame], day: str) -> dict[str, pd.DataFrame]:
    """The rows of the four time tables that fall on one UTC day (what a daily export of that day holds)."""
    start = pd.Timestamp(day)
    end = start + pd.Timedelta(days=1)
    return {
        name: tables[name][(tables[name]["datetime"] >= start) & (tables[name]["datetime"] < end)]
        for name in DAILY_TABLES
    }


def write_day_files(tables: Mapping[str, pd.DataFrame], day: str, out_dir: str | Path) -> dict[str, Path]:
    """Write one day's export, ``PdM_<table>_<day>.csv`` for the four time tables (a header-only file where the
    day has no rows, as a daily export has), each atomically."""
    return write_kaggle_csv(day_tables(tables, day), out_dir, suffix=f"_{day}")


# --- bad exports ---------------------------------------------------------------------------------------------


def _replace_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


#: Defects of real exports, each turning one line of a Kaggle file (and its header) into the lines written instead.
#: The row-level ones a corrupted benchmark file mixes; see ``pm_assets_tests/core/test_bad_input.py`` for the
#: outcome of each.
CORRUPTIONS: dict[str, Callable[[str, str], list[str]]] = {
    "impossible_timestamp": lambda line, header: [_replace_field(line, 0, "2015-13-45 99:00:00")],
    "field_missing": lambda line, header: [line.rsplit(",", 1)[0]],
    "field_extra": lambda line, header: [line + ",9.9"],
    "blank_line": lambda line, header: ["", line],
    "text_for_number": lambda line, header: [_replace_field(line, -1, "ERR")],
    "decimal_comma": lambda line, header: [_replace_field(line, -1, '"41,5"')],
    "nul_bytes": lambda line, header: ["\x00" * len(line)],
    "header_repeated": lambda line, header: [header, line],
    "iso_timestamp": lambda line, header: [_replace_field(line, 0, line.split(",", 1)[0].replace(" ", "T") + "Z")],
    "far_future": lambda line, header: [_replace_field(line, 0, "2031" + line.split(",", 1)[0][4:])],
}


def corrupt_csv(
    source: str | Path,
    target: str | Path,
    fraction: float = 0.01,
    seed: int = 0,
    kinds: tuple[str, ...] = tuple(CORRUPTIONS),
) -> dict[str, int]:
    """Write a copy of a Kaggle CSV with ``fraction`` of its data lines damaged, the defects of :data:`CORRUPTIONS`
    in turn over random lines (deterministic for a seed); returns how many lines got each defect."""
    text = Path(source).read_bytes().decode("utf-8")
    eol = "\r\n" if "\r\n" in text[:10_000] else "\n"
    lines = text.split(eol)
    if lines and lines[-1] == "":
        lines.pop()
    header, body = lines[0], lines[1:]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(body), size=int(round(fraction * len(body))), replace=False))
    damage = {int(position): kinds[i % len(kinds)] for i, position in enumerate(rng.permutation(chosen))}
    out = [header]
    for position, line in enumerate(body):
        kind = damage.get(position)
        out.extend(CORRUPTIONS[kind](line, header) if kind else [line])
    write_bytes_atomic(target, (eol.join(out) + eol).encode("utf-8"))
    return {k: sum(1 for v in damage.values() if v == k) for k in kinds}
