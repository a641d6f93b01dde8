"""Synthetic e-commerce events: a seeded, streaming generator whose structure a model can learn.

The world is a European web shop with four warehouses (Venlo, Poznan, Getafe, Piacenza) serving
customers in 45 real cities across five regions. Nothing is drawn independently at random where a
real business would have a cause, so delivery delays are predictable from what is known:

- **Arrivals.** Orders arrive as a Poisson process whose rate follows the hour of day (quiet
  nights, an evening peak), the weekday (busy Mondays, quiet Saturdays) and the peak season
  (15 November to 31 December, x1.8). The clock is UTC, close to local time in the modelled area.
- **Customers.** A pool of ``orders / 3`` customers; who orders is Zipf-like (a few customers buy
  very often, most once or twice). A customer's home city (population weighted, coordinates
  jittered), segment and preferred payment type are a hash of the customer number, so the pool
  costs no memory however large it is.
- **Baskets.** 200 products in 12 categories of 5 departments, each category with a lognormal
  price and weight; popular products sell more (Zipf). 1 to 5 lines per order.
- **Shipping.** The parcel leaves the nearest warehouse (another one 12% of the time, when the
  nearest is out of stock). Same Day is only offered within 350 km of the origin. Each mode has a
  promise (``scheduled_days``), a handling time, a fixed transit time and a road speed; each
  carrier a reliability factor; each region a last-mile factor; the UK, Switzerland and Norway
  add customs. Real delivery time = payment wait + handling (x1.6 in peak season), shifted to
  warehouse hours (Mon-Sat 06-22), + transit ``(base + km / speed) x region x carrier x peak`` +
  bulky-weight and customs days, x lognormal noise; transit stands still on Sundays and the
  parcel is delivered in delivery hours (Mon-Sat 08-21), so Friday and Saturday orders wait
  over the weekend.
- **Incidents** (``ops_logs``), a few per week: a *carrier* incident slows that carrier's parcels
  to one region (its hub city is the incident location) by days, and parcels shipped while it is
  open get an ``exception``; a *warehouse* incident holds that warehouse's parcels until it is
  resolved; a *system* incident (payment gateway) delays payment capture. Durations are lognormal
  by severity, from hours to days.

Per order this emits ``orders/order_placed``; ``payments/payment_captured`` minutes later (hours
for bank transfers), or ``payment_refused`` (about 1.5%) followed by a ``canceled`` shipment;
``shipments/shipment_status`` ``shipped``, ``in_transit`` (about halfway), ``exception`` when
something went wrong, and ``delivered`` -- or ``canceled`` (about 1% of paid orders, before
shipping). ``ops_logs/web_access`` lines (product page views, some by the buyer just before the
order) come at ``web_access_per_order`` per order.

:func:`generate` streams: an order's future events (payment, tracking) and incident resolutions
wait in a heap and are released when the next order's time passes them, so memory is bounded by
the orders still open, not by the volume. Everything is drawn from ``random.Random`` streams
seeded from ``SyntheticConfig.seed``, so the same config yields the same events, ids included.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from scpro_assets.sources.common import MappingReport, SourceEvent, iso, make_event, pseudonymise

SOURCE = "synthetic"
MARKET = "Europe"

MS_MINUTE = 60_000
MS_HOUR = 3_600_000
MS_DAY = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate: volume, seed, start and the mean rates of the processes."""

    orders: int = 10_000
    seed: int = 7
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    orders_per_day: float = 400.0
    web_access_per_order: float = 0.5
    incidents_per_week: float = 4.0


# --- the world ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A customer city; ``weight`` is roughly its metro population in millions."""

    name: str
    country: str
    region: str
    lat: float
    lon: float
    weight: float


CITIES: tuple[City, ...] = (
    City("Paris", "France", "Western Europe", 48.8566, 2.3522, 11.0),
    City("Lyon", "France", "Western Europe", 45.7640, 4.8357, 2.3),
    City("Marseille", "France", "Western Europe", 43.2965, 5.3698, 1.9),
    City("Toulouse", "France", "Western Europe", 43.6047, 1.4442, 1.4),
    City("Bordeaux", "France", "Western Europe", 44.8378, -0.5792, 1.3),
    City("Lille", "France", "Western Europe", 50.6292, 3.0573, 1.2),
    City("Nantes", "France", "Western Europe", 47.2184, -1.5536, 1.0),
    City("Amsterdam", "Netherlands", "Western Europe", 52.3676, 4.9041, 2.5),
    City("Rotterdam", "Netherlands", "Western Europe", 51.9244, 4.4777, 1.8),
    City("Brussels", "Belgium", "Western Europe", 50.8503, 4.3517, 2.1),
    City("Antwerp", "Belgium", "Western Europe", 51.2194, 4.4025, 1.1),
    City("Berlin", "Germany", "Central Europe", 52.5200, 13.4050, 3.6),
    City("Hamburg", "Germany", "Central Europe", 53.5511, 9.9937, 1.8),
    City("Munich", "Germany", "Central Europe", 48.1351, 11.5820, 1.5),
    City("Cologne", "Germany", "Central Europe", 50.9375, 6.9603, 1.1),
    City("Frankfurt", "Germany", "Central Europe", 50.1109, 8.6821, 0.8),
    City("Stuttgart", "Germany", "Central Europe", 48.7758, 9.1829, 0.6),
    City("Vienna", "Austria", "Central Europe", 48.2082, 16.3738, 1.9),
    City("Zurich", "Switzerland", "Central Europe", 47.3769, 8.5417, 1.4),
    City("Madrid", "Spain", "Southern Europe", 40.4168, -3.7038, 6.6),
    City("Barcelona", "Spain", "Southern Europe", 41.3874, 2.1686, 5.5),
    City("Valencia", "Spain", "Southern Europe", 39.4699, -0.3763, 1.6),
    City("Seville", "Spain", "Southern Europe", 37.3891, -5.9845, 1.5),
    City("Lisbon", "Portugal", "Southern Europe", 38.7223, -9.1393, 2.9),
    City("Porto", "Portugal", "Southern Europe", 41.1579, -8.6291, 1.7),
    City("Milan", "Italy", "Southern Europe", 45.4642, 9.1900, 3.2),
    City("Rome", "Italy", "Southern Europe", 41.9028, 12.4964, 4.3),
    City("Naples", "Italy", "Southern Europe", 40.8518, 14.2681, 3.1),
    City("Turin", "Italy", "Southern Europe", 45.0703, 7.6869, 1.7),
    City("Athens", "Greece", "Southern Europe", 37.9838, 23.7275, 3.2),
    City("London", "United Kingdom", "Northern Europe", 51.5074, -0.1278, 9.0),
    City("Manchester", "United Kingdom", "Northern Europe", 53.4808, -2.2426, 2.8),
    City("Dublin", "Ireland", "Northern Europe", 53.3498, -6.2603, 1.4),
    City("Stockholm", "Sweden", "Northern Europe", 59.3293, 18.0686, 2.4),
    City("Gothenburg", "Sweden", "Northern Europe", 57.7089, 11.9746, 1.0),
    City("Copenhagen", "Denmark", "Northern Europe", 55.6761, 12.5683, 2.1),
    City("Oslo", "Norway", "Northern Europe", 59.9139, 10.7522, 1.5),
    City("Helsinki", "Finland", "Northern Europe", 60.1699, 24.9384, 1.5),
    City("Warsaw", "Poland", "Eastern Europe", 52.2297, 21.0122, 1.8),
    City("Krakow", "Poland", "Eastern Europe", 50.0647, 19.9450, 0.8),
    City("Wroclaw", "Poland", "Eastern Europe", 51.1079, 17.0385, 0.6),
    City("Prague", "Czechia", "Eastern Europe", 50.0755, 14.4378, 1.3),
    City("Budapest", "Hungary", "Eastern Europe", 47.4979, 19.0402, 1.7),
    City("Bucharest", "Romania", "Eastern Europe", 44.4268, 26.1025, 2.3),
    City("Sofia", "Bulgaria", "Eastern Europe", 42.6977, 23.3219, 1.3),
)

#: Last-mile factor on transit time: dense, well-served regions are faster.
REGION_FACTOR: dict[str, float] = {
    "Western Europe": 1.0,
    "Central Europe": 0.95,
    "Southern Europe": 1.12,
    "Northern Europe": 1.05,
    "Eastern Europe": 1.18,
}

#: Destinations outside the EU customs union: parcels wait at the border.
CUSTOMS_COUNTRIES = frozenset({"United Kingdom", "Switzerland", "Norway"})
CUSTOMS_DAYS = 0.7


@dataclass(frozen=True)
class Warehouse:
    """An origin location (fulfilment centre)."""

    name: str
    city: str
    country: str
    lat: float
    lon: float


WAREHOUSES: tuple[Warehouse, ...] = (
    Warehouse("Venlo DC", "Venlo", "Netherlands", 51.3704, 6.1724),
    Warehouse("Poznan DC", "Poznan", "Poland", 52.4064, 16.9252),
    Warehouse("Getafe DC", "Getafe", "Spain", 40.3057, -3.7329),
    Warehouse("Piacenza DC", "Piacenza", "Italy", 45.0526, 9.6930),
)

#: Probability the parcel leaves another warehouse than the nearest (stock-out there).
OTHER_WAREHOUSE_P = 0.12


@dataclass(frozen=True)
class Carrier:
    """A carrier and how reliable it is (a factor on transit time)."""

    name: str
    factor: float
    incident_weight: float


CARRIERS: tuple[Carrier, ...] = (
    Carrier("Metro Couriers", 1.0, 0.06),
    Carrier("SkyParcel", 0.95, 0.16),
    Carrier("EuroLink Express", 1.05, 0.26),
    Carrier("ContinentalPost", 1.12, 0.28),
    Carrier("TransRoad Freight", 1.0, 0.24),
)
_CARRIER = {c.name: c for c in CARRIERS}


@dataclass(frozen=True)
class Mode:
    """A shipping mode: its promise, handling and transit parameters and its price."""

    name: str
    scheduled_days: int
    handling_hours: float
    base_days: float
    km_per_day: float
    freight_base: float
    freight_per_kg: float


# fmt: off
#                    name          promise  handling_h  base_days  km/day  freight  per kg
SAME_DAY = Mode("Same Day",             1,       1.5,      0.15,  1500.0,     9.9,   0.40)
MODES: tuple[Mode, ...] = (
    SAME_DAY,
    Mode("First Class",                 2,       4.0,      0.65,  1100.0,     7.5,   0.30),
    Mode("Second Class",                3,      10.0,      0.70,   700.0,     5.0,   0.20),
    Mode("Standard Class",              5,      20.0,      1.10,   400.0,     3.5,   0.12),
)
# fmt: on
#: Carriers of each mode with their share of its parcels.
MODE_CARRIERS: dict[str, tuple[tuple[str, float], ...]] = {
    "Same Day": (("Metro Couriers", 1.0),),
    "First Class": (("SkyParcel", 0.6), ("EuroLink Express", 0.4)),
    "Second Class": (("EuroLink Express", 0.5), ("ContinentalPost", 0.5)),
    "Standard Class": (("ContinentalPost", 0.45), ("TransRoad Freight", 0.55)),
}
#: Same Day is only offered this close to the origin warehouse, and then chosen this often.
SAME_DAY_MAX_KM = 350.0
SAME_DAY_P = 0.3
#: Mode mix of the other orders by customer segment (First, Second, Standard Class).
MODE_MIX: dict[str, tuple[float, float, float]] = {
    "Consumer": (0.14, 0.22, 0.64),
    "Corporate": (0.30, 0.28, 0.42),
    "Home Office": (0.20, 0.25, 0.55),
}

SEGMENTS: tuple[tuple[str, float], ...] = (
    ("Consumer", 0.52),
    ("Corporate", 0.30),
    ("Home Office", 0.18),
)

#: Payment types: share, probability of refusal, median capture delay in minutes.
PAYMENTS: tuple[tuple[str, float, float, float], ...] = (
    ("credit_card", 0.60, 0.016, 2.0),
    ("debit_card", 0.20, 0.020, 1.5),
    ("paypal", 0.12, 0.008, 3.0),
    ("bank_transfer", 0.08, 0.005, 360.0),
)
#: Share of paid orders the customer cancels before shipping.
CUSTOMER_CANCEL_P = 0.01
#: Share of shipments with a random exception (address problem), costing about a day.
RANDOM_EXCEPTION_P = 0.02

#: Categories: department, category, share of items, price median (EUR) and lognormal sigma,
#: weight median (g) and sigma, product nouns.
# fmt: off
CATEGORIES: tuple[tuple[str, str, float, float, float, float, float, tuple[str, ...]], ...] = (
    ("Apparel", "Footwear", 0.12, 85, 0.35, 900, 0.25, ("Running Shoe", "Trail Shoe", "Sneaker")),
    ("Apparel", "Women's Apparel", 0.11, 40, 0.5, 350, 0.4, ("Jacket", "Dress", "Leggings")),
    ("Apparel", "Kids' Clothing", 0.07, 22, 0.4, 250, 0.4, ("Hoodie", "T-Shirt", "Rain Coat")),
    ("Fitness", "Cardio Equipment", 0.03, 450, 0.5, 35000, 0.4,
     ("Treadmill", "Rowing Machine", "Exercise Bike")),
    ("Fitness", "Strength Training", 0.06, 90, 0.7, 9000, 0.8,
     ("Dumbbell Set", "Kettlebell", "Weight Bench")),
    ("Outdoors", "Camping & Hiking", 0.09, 95, 0.7, 2500, 0.7,
     ("Tent", "Backpack", "Sleeping Bag")),
    ("Outdoors", "Fishing", 0.05, 60, 0.6, 1200, 0.6, ("Fishing Rod", "Reel", "Tackle Box")),
    ("Technology", "Computers", 0.06, 850, 0.4, 2200, 0.3, ("Laptop", "Monitor", "Tablet")),
    ("Technology", "Cameras", 0.04, 420, 0.6, 700, 0.5,
     ("Mirrorless Camera", "Action Camera", "Lens")),
    ("Technology", "Video Games", 0.14, 45, 0.35, 180, 0.3,
     ("Console Game", "Controller", "Headset")),
    ("Home", "Kitchen", 0.15, 35, 0.7, 1400, 0.6, ("Blender", "Pan Set", "Coffee Maker")),
    ("Home", "Furniture", 0.08, 220, 0.6, 18000, 0.6, ("Desk", "Office Chair", "Bookshelf")),
)
# fmt: on
N_PRODUCTS = 200
N_SELLERS = 30
BRANDS = ("Alpenrad", "Nordika", "Veloce", "Kestrel", "Lumio", "Borealis", "Cascada", "Meridian")

#: Items per order and quantity per line.
ITEMS_PER_ORDER = ((1, 0.45), (2, 0.28), (3, 0.15), (4, 0.08), (5, 0.04))
QUANTITIES = ((1, 0.80), (2, 0.14), (3, 0.06))
#: Probability of a discount and the discount rates then offered.
DISCOUNT_P = 0.45
DISCOUNT_RATES = (0.05, 0.10, 0.15, 0.20, 0.25)

#: Relative order rate by hour of day (UTC) and weekday (Monday first); both normalised to mean 1.
HOUR_PROFILE = (
    0.25, 0.15, 0.10, 0.10, 0.10, 0.15, 0.30, 0.55, 0.80, 1.00, 1.10, 1.15,
    1.20, 1.15, 1.10, 1.10, 1.15, 1.25, 1.40, 1.60, 1.75, 1.60, 1.10, 0.60,
)  # fmt: skip
WEEKDAY_PROFILE = (1.12, 1.06, 1.02, 1.00, 0.92, 0.85, 1.03)
PEAK_ORDER_FACTOR = 1.8
PEAK_HANDLING_FACTOR = 1.6
PEAK_TRANSIT_FACTOR = 1.2
PEAK_INCIDENT_FACTOR = 1.5

#: Incident kinds and their share; severities with share, median duration (hours) and the delay
#: they add to a carrier's transit (days).
INCIDENT_KINDS = (("carrier", 0.70), ("warehouse", 0.22), ("system", 0.08))
SEVERITIES = (("low", 0.45, 6.0, 1.2), ("medium", 0.40, 20.0, 2.2), ("high", 0.15, 48.0, 4.0))
INCIDENT_MAX_HOURS = 6 * 24
INCIDENT_CAUSES = {
    "carrier": ("sorting hub outage", "driver strike", "severe weather", "vehicle shortage"),
    "warehouse": ("conveyor failure", "staff shortage", "inventory system outage", "power cut"),
    "system": ("payment gateway degraded", "payment provider timeout"),
}
RESOLUTIONS = ("service restored", "workaround in place", "root cause fixed")


# --- small helpers ------------------------------------------------------------------------------


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km; the road distance a parcel travels is proportional to it."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12_742.0 * math.asin(math.sqrt(min(1.0, a)))


def _to_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("SyntheticConfig.start must be timezone-aware")
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def _to_dt(ms: int) -> datetime:
    """Times are integer milliseconds inside the generator: exact, cheap to compare and sort."""
    return _EPOCH + timedelta(milliseconds=ms)


@lru_cache(maxsize=4096)
def is_peak_day(day: int) -> bool:
    """Whether day number ``day`` (since 1970-01-01) is in the peak season, 15 Nov - 31 Dec."""
    d = date(1970, 1, 1) + timedelta(days=day)
    return d.month == 12 or (d.month == 11 and d.day >= 15)


def _splitmix(x: int) -> int:
    """A 64-bit mixing hash: customer attributes are a pure function of (seed, customer number)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    return list(itertools.accumulate(weights))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower().replace("'", "")).strip("-")


def _shift_into_hours(ms: int, open_hour: int, close_hour: int, rng: random.Random) -> int:
    """Move a time into working hours (Mon-Sat, ``open_hour`` to ``close_hour``).

    A parcel ready at night waits for the morning shift, one ready on Sunday for Monday; the
    first parcels of a shift go out within its first two hours.
    """
    day, in_day = divmod(ms, MS_DAY)
    if in_day >= close_hour * MS_HOUR:
        day, in_day = day + 1, -1
    if (day + 3) % 7 == 6:  # Sunday (1970-01-01 was a Thursday)
        day, in_day = day + 1, -1
    if in_day < open_hour * MS_HOUR:
        in_day = open_hour * MS_HOUR + int(rng.random() * 2 * MS_HOUR)
    return day * MS_DAY + in_day


def _add_transit(start: int, duration: int) -> int:
    """``start`` plus ``duration`` of transit, which stands still on Sundays (no line-haul).

    This is what makes Thursday-to-Saturday shipments, and so Friday and Saturday orders, slower.
    """
    t, left = start, duration
    while left > 0:
        day_end = (t // MS_DAY + 1) * MS_DAY
        if (t // MS_DAY + 3) % 7 != 6:
            step = min(left, day_end - t)
            left -= step
            if not left:
                return t + step
        t = day_end
    return t


def _poisson(rng: random.Random, mean: float) -> int:
    """Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


# --- products, customers, incidents -------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """A catalogue product with its fixed price and shipping weight."""

    product_id: str
    name: str
    category: str
    department: str
    seller_id: str
    price: float
    weight_g: float
    url: str


def build_catalog(rng: random.Random) -> tuple[list[Product], list[float]]:
    """Products per category, lognormal price and weight per category, Zipf popularity.

    Returns the products and their cumulative popularity (for ``random.choices``).
    """
    products: list[Product] = []
    weights: list[float] = []
    for (
        dept,
        category,
        share,
        price_med,
        price_sigma,
        weight_med,
        weight_sigma,
        nouns,
    ) in CATEGORIES:
        count = max(6, round(N_PRODUCTS * share))
        ranks = list(range(1, count + 1))
        rng.shuffle(ranks)
        harmonic = sum(1 / r for r in ranks)
        for k in range(count):
            noun = nouns[k % len(nouns)]
            name = f"{rng.choice(BRANDS)} {noun} {rng.choice('ACEMRSTX')}{rng.randint(1, 9)}0"
            pid = f"synthetic-product-{len(products) + 1:04d}"
            price = round(max(2.0, price_med * math.exp(rng.gauss(0, price_sigma))), 2)
            weight = round(max(50.0, weight_med * math.exp(rng.gauss(0, weight_sigma))))
            url = f"/department/{_slug(dept)}/category/{_slug(category)}/product/{_slug(name)}"
            seller = f"synthetic-seller-{rng.randint(1, N_SELLERS):02d}"
            products.append(Product(pid, name, category, dept, seller, price, float(weight), url))
            weights.append(share / (ranks[k] * harmonic))
    return products, _cumulative(weights)


@dataclass(frozen=True)
class Customer:
    """A customer, derived from its number: home, segment, preferred payment type."""

    number: int
    customer_id: str
    city: City
    lat: float
    lon: float
    segment: str
    payment_type: str


class _Customers:
    """The customer pool: Zipf-like who-orders, attributes hashed from the customer number."""

    #: Exponent on a uniform draw: customer k of n orders with probability ~ k^(1/1.6 - 1).
    CONCENTRATION = 1.6
    #: Customers kept built; the frequent buyers stay in it, so most look-ups are hits.
    CACHE_SIZE = 1 << 15

    def __init__(self, seed: int, size: int) -> None:
        self.seed, self.size = seed, max(1, size)
        self._salt = _splitmix(seed * 0x1000193 + 17)
        self._city_cum = _cumulative([c.weight for c in CITIES])
        self._segment_cum = _cumulative([w for _, w in SEGMENTS])
        self._payment_cum = _cumulative([p[1] for p in PAYMENTS])
        self._cached = lru_cache(maxsize=self.CACHE_SIZE)(self._build)

    def draw(self, rng: random.Random) -> int:
        """A customer number; low numbers are the frequent buyers."""
        return int(self.size * rng.random() ** self.CONCENTRATION)

    def get(self, number: int) -> Customer:
        """The customer with this number (a pure function of it: no pool is stored)."""
        return self._cached(number)

    def _build(self, number: int) -> Customer:
        h1 = _splitmix(self._salt ^ number)
        h2 = _splitmix(h1)
        u = [((h >> s) & 0xFFFF) / 65536.0 for h in (h1, h2) for s in (0, 16, 32, 48)]
        city = CITIES[bisect(self._city_cum, u[0] * self._city_cum[-1])]
        segment = SEGMENTS[bisect(self._segment_cum, u[3] * self._segment_cum[-1])][0]
        payment = PAYMENTS[bisect(self._payment_cum, u[4] * self._payment_cum[-1])][0]
        return Customer(
            number=number,
            customer_id=pseudonymise(f"{SOURCE}-s{self.seed}-customer-{number}"),
            city=city,
            lat=round(city.lat + (u[1] - 0.5) * 0.3, 5),
            lon=round(city.lon + (u[2] - 0.5) * 0.4, 5),
            segment=segment,
            payment_type=payment,
        )


@dataclass(frozen=True)
class Incident:
    """An incident while it matters: what it affects (``target``), when, and how badly."""

    incident_id: str
    kind: str
    target: object  # warehouse index, (carrier, region) or None for system incidents
    severity: str
    delay_days: float
    opened: int
    resolved: int
    location: dict[str, Any] | None
    description: str


# --- the simulation -----------------------------------------------------------------------------


def _location(name_city: str, country: str, lat: float, lon: float) -> dict[str, Any]:
    return {"city": name_city, "country": country, "lat": lat, "lon": lon}


class _Simulation:
    """State of one run: random streams, the pending-event heap and the open incidents."""

    def __init__(self, config: SyntheticConfig) -> None:
        if config.orders < 0 or config.orders_per_day <= 0:
            raise ValueError("orders must be >= 0 and orders_per_day > 0")
        self.config = config
        seed = config.seed
        # Separate streams: the web-log volume does not change the orders, and incidents happen
        # at the same times whatever the orders are.
        self.rng = random.Random(f"{SOURCE}-{seed}-orders")
        self.web_rng = random.Random(f"{SOURCE}-{seed}-web")
        self.inc_rng = random.Random(f"{SOURCE}-{seed}-incidents")
        self.products, self.product_cum = build_catalog(random.Random(f"{SOURCE}-{seed}-catalog"))
        self.customers = _Customers(seed, config.orders // 3)
        self.prefix = f"{SOURCE}-s{seed}"
        self.heap: list[tuple[int, int, SourceEvent]] = []
        self.seq = itertools.count()
        self.web_seq = itertools.count(1)
        self.incident_seq = itertools.count(1)
        self.incidents: list[Incident] = []
        self.start_ms = _to_ms(config.start)
        self.next_incident_ms = self.start_ms + self._incident_gap()
        self.wh_locations = [_location(w.city, w.country, w.lat, w.lon) for w in WAREHOUSES]
        self.nearest_wh = {
            c.name: min(
                range(len(WAREHOUSES)),
                key=lambda i, c=c: haversine_km(c.lat, c.lon, WAREHOUSES[i].lat, WAREHOUSES[i].lon),
            )
            for c in CITIES
        }
        regions = sorted({c.region for c in CITIES})
        self.regions = regions
        self.region_cum = _cumulative(
            [sum(c.weight for c in CITIES if c.region == r) for r in regions]
        )
        self.hubs = {
            r: max((c for c in CITIES if c.region == r), key=lambda c: c.weight) for r in regions
        }
        wd_mean = sum(WEEKDAY_PROFILE) / 7
        hour_mean = sum(HOUR_PROFILE) / 24
        self.per_ms = [
            [config.orders_per_day / MS_DAY * (w / wd_mean) * (h / hour_mean) for h in HOUR_PROFILE]
            for w in WEEKDAY_PROFILE
        ]
        self.n_items_cum = _cumulative([w for _, w in ITEMS_PER_ORDER])
        self.qty_cum = _cumulative([w for _, w in QUANTITIES])
        self.payments = {p[0]: p for p in PAYMENTS}
        self.products_by_id = {p.product_id: p for p in self.products}
        self.mode_carrier_cum = {
            mode: _cumulative([w for _, w in carriers]) for mode, carriers in MODE_CARRIERS.items()
        }

    # -- processes ----------------------------------------------------------------------------

    def next_arrival(self, now: int) -> int:
        """Next order time: a Poisson process with a piecewise-constant (hourly) rate.

        Draws one unit-exponential amount of "intensity" and spends it hour by hour, which is
        exact for an hourly rate and costs one draw per order.
        """
        need = self.rng.expovariate(1.0)
        t = now
        while True:
            hour = t // MS_HOUR
            rate = self.per_ms[(hour // 24 + 3) % 7][hour % 24]
            if is_peak_day(hour // 24):
                rate *= PEAK_ORDER_FACTOR
            end = (hour + 1) * MS_HOUR
            available = rate * (end - t)
            if need <= available:
                return t + int(need / rate)
            need -= available
            t = end

    def _incident_gap(self) -> int:
        """Time to the next incident candidate (thinned to the off-season rate later)."""
        rate = self.config.incidents_per_week * PEAK_INCIDENT_FACTOR / (7 * MS_DAY)
        if rate <= 0:
            return 1 << 62
        return max(1, int(self.inc_rng.expovariate(rate)))

    def incidents_until(self, ms: int) -> None:
        """Create every incident opening up to ``ms``, so shipping decisions can see them."""
        rng = self.inc_rng
        while self.next_incident_ms <= ms:
            opened = self.next_incident_ms
            self.next_incident_ms += self._incident_gap()
            if not is_peak_day(opened // MS_DAY) and rng.random() * PEAK_INCIDENT_FACTOR > 1:
                continue
            self._open_incident(opened, rng)

    def _open_incident(self, opened: int, rng: random.Random) -> None:
        kind = rng.choices([k for k, _ in INCIDENT_KINDS], [w for _, w in INCIDENT_KINDS])[0]
        severity, _, median_h, delay_days = rng.choices(SEVERITIES, [s[1] for s in SEVERITIES])[0]
        if kind == "system":
            median_h /= 6  # the payment provider fixes its gateway within hours
        hours = min(INCIDENT_MAX_HOURS, median_h * math.exp(rng.gauss(0, 0.7)))
        resolved = opened + max(10 * MS_MINUTE, int(hours * MS_HOUR))
        cause = rng.choice(INCIDENT_CAUSES[kind])
        incident_id = f"{self.prefix}-incident-{next(self.incident_seq)}"
        carrier = None
        location: dict[str, Any] | None
        if kind == "carrier":
            carrier = rng.choices(CARRIERS, [c.incident_weight for c in CARRIERS])[0].name
            region = self.regions[bisect(self.region_cum, rng.random() * self.region_cum[-1])]
            hub = self.hubs[region]
            target: object = (carrier, region)
            location = _location(hub.name, hub.country, hub.lat, hub.lon)
            description = f"{carrier} delays in {region} ({hub.name} hub): {cause}"
        elif kind == "warehouse":
            wh = rng.randrange(len(WAREHOUSES))
            target = wh
            location = self.wh_locations[wh]
            description = f"{WAREHOUSES[wh].name}: {cause}"
        else:
            target, location, description = None, None, cause
        incident = Incident(
            incident_id,
            kind,
            target,
            severity,
            delay_days,
            opened,
            resolved,
            location,
            description,
        )
        self.incidents.append(incident)
        self.push(
            make_event(
                SOURCE,
                "incident_opened",
                _to_dt(opened),
                (incident_id,),
                incident_id,
                incident_id=incident_id,
                kind=kind,
                severity=severity,
                carrier=carrier,
                location=dict(location) if location else None,
                description=description,
            )
        )
        self.push(
            make_event(
                SOURCE,
                "incident_resolved",
                _to_dt(resolved),
                (incident_id, "resolved"),
                incident_id,
                incident_id=incident_id,
                kind=kind,
                resolution=rng.choice(RESOLUTIONS),
            )
        )

    def open_incident(self, kind: str, target: object, at: int) -> Incident | None:
        """The incident of this kind and target open at time ``at``, if any."""
        self.incidents_until(at)
        for incident in self.incidents:
            if (
                incident.kind == kind
                and incident.target == target
                and incident.opened <= at < incident.resolved
            ):
                return incident
        return None

    def prune_incidents(self, now: int) -> None:
        """Forget incidents resolved before ``now``: no later decision can be affected by them."""
        if any(i.resolved <= now for i in self.incidents):
            self.incidents = [i for i in self.incidents if i.resolved > now]

    def push(self, event: SourceEvent, ms: int | None = None) -> None:
        """Schedule an event; the sequence number keeps ties in creation order."""
        when = _to_ms(event.event_time) if ms is None else ms
        heapq.heappush(self.heap, (when, next(self.seq), event))

    # -- one order ------------------------------------------------------------------------------

    def basket(self, order_id: str, mode: Mode) -> tuple[list[dict[str, Any]], float, float]:
        """Order lines with prices, discounts and freight; returns lines, amount and weight (kg)."""
        rng = self.rng
        n = ITEMS_PER_ORDER[bisect(self.n_items_cum, rng.random() * self.n_items_cum[-1])][0]
        chosen = rng.choices(self.products, cum_weights=self.product_cum, k=n)
        freight_base = mode.freight_base / n
        items, amount, kg = [], 0.0, 0.0
        for k, product in enumerate(chosen, start=1):
            qty = QUANTITIES[bisect(self.qty_cum, rng.random() * self.qty_cum[-1])][0]
            if product.weight_g > 15_000:
                qty = 1  # nobody orders three treadmills
            gross = product.price * qty
            discount = (
                round(gross * rng.choice(DISCOUNT_RATES), 2) if rng.random() < DISCOUNT_P else 0.0
            )
            line_kg = product.weight_g * qty / 1000
            freight = round(freight_base + mode.freight_per_kg * line_kg, 2)
            kg += line_kg
            amount += gross - discount + freight
            items.append(
                {
                    "item_id": f"{order_id}-{k}",
                    "product_id": product.product_id,
                    "product_name": product.name,
                    "category": product.category,
                    "department": product.department,
                    "seller_id": product.seller_id,
                    "quantity": qty,
                    "unit_price": product.price,
                    "discount": discount,
                    "freight": freight,
                    "weight_g": product.weight_g * qty,
                }
            )
        return items, round(amount, 2), kg

    def choose_mode(self, customer: Customer, distance: float) -> Mode:
        """Same Day when close enough (sometimes), otherwise by the segment's mode mix."""
        rng = self.rng
        if distance <= SAME_DAY_MAX_KM and rng.random() < SAME_DAY_P:
            return SAME_DAY
        first, second, _ = MODE_MIX[customer.segment]
        u = rng.random()
        return MODES[1] if u < first else MODES[2] if u < first + second else MODES[3]

    def order(self, number: int, placed: int) -> tuple[SourceEvent, list[dict[str, Any]], str]:
        """Draw one order and schedule its payment and shipment events.

        Returns the ``order_placed`` event (emitted at once by the caller), the order lines and
        the buyer's pseudonymous id (for the web-log session that led to the order).
        """
        rng = self.rng
        order_id = f"{self.prefix}-order-{number}"
        customer = self.customers.get(self.customers.draw(rng))
        city = customer.city
        origin = self.nearest_wh[city.name]
        if rng.random() < OTHER_WAREHOUSE_P:
            origin = rng.randrange(len(WAREHOUSES))
        wh = WAREHOUSES[origin]
        distance = haversine_km(wh.lat, wh.lon, customer.lat, customer.lon)
        mode = self.choose_mode(customer, distance)
        carrier_cum = self.mode_carrier_cum[mode.name]
        carrier = MODE_CARRIERS[mode.name][bisect(carrier_cum, rng.random() * carrier_cum[-1])][0]
        items, amount, kg = self.basket(order_id, mode)
        payment_type = customer.payment_type if rng.random() < 0.8 else rng.choice(PAYMENTS)[0]
        destination = _location(city.name, city.country, customer.lat, customer.lon)
        placed_event = make_event(
            SOURCE,
            "order_placed",
            _to_dt(placed),
            (order_id,),
            order_id,
            order_id=order_id,
            customer={
                "customer_id": customer.customer_id,
                "segment": customer.segment,
                "city": city.name,
                "country": city.country,
                "lat": customer.lat,
                "lon": customer.lon,
            },
            market=MARKET,
            region=city.region,
            channel="mobile" if rng.random() < 0.3 else "web",
            shipping_mode=mode.name,
            carrier=carrier,
            origin=dict(self.wh_locations[origin]),
            destination=dict(destination),
            promised_delivery_date=iso(_to_dt(placed + mode.scheduled_days * MS_DAY)),
            scheduled_days=mode.scheduled_days,
            payment_type=payment_type,
            items=items,
        )
        shipment = {
            "order_id": order_id,
            "carrier": carrier,
            "shipping_mode": mode.name,
            "order_time": placed_event.payload["event_time"],
        }
        paid = self.payment(order_id, placed, payment_type, amount)
        if paid < 0:  # refused: the order is canceled
            canceled = -paid + int((5 + rng.random() * 55) * MS_MINUTE)
            self.ship_event(
                shipment, "canceled", canceled, self.wh_locations[origin], "payment refused"
            )
        else:
            order = _Order(
                shipment, placed, paid, origin, customer, destination, mode, carrier, distance, kg
            )
            self.fulfil(order)
        return placed_event, items, customer.customer_id

    def payment(self, order_id: str, placed: int, payment_type: str, amount: float) -> int:
        """Schedule the payment event; return its time, negated when the payment is refused.

        Capture takes minutes (hours for bank transfers); an open payment-gateway incident holds
        it until resolution and triples the refusal rate.
        """
        rng = self.rng
        _, _, refuse_p, capture_minutes = self.payments[payment_type]
        paid = placed + 1000 + int(capture_minutes * MS_MINUTE * math.exp(rng.gauss(0, 0.6)))
        system = self.open_incident("system", None, placed)
        if system is not None:
            paid = max(paid, system.resolved + int(rng.random() * 20 * MS_MINUTE))
            refuse_p *= 3
        refused = rng.random() < refuse_p
        installments = 1
        if payment_type == "credit_card":
            installments = rng.choice((1, 1, 1, 2, 3, 6, 10))
        self.push(
            make_event(
                SOURCE,
                "payment_refused" if refused else "payment_captured",
                _to_dt(paid),
                (order_id, 1),
                order_id,
                order_id=order_id,
                payment_type=payment_type,
                installments=installments,
                sequence=1,
                amount=amount,
            ),
            paid,
        )
        return -paid if refused else paid

    def fulfil(self, o: _Order) -> None:
        """Schedule a paid order's shipment events, from the warehouse to the customer's door."""
        rng = self.rng
        peak = is_peak_day(o.placed // MS_DAY)
        origin_location = self.wh_locations[o.origin]
        # Handling, then the warehouse's hours; an incident there holds parcels until resolved.
        handling = o.mode.handling_hours * math.exp(rng.gauss(0, 0.5))
        if peak:
            handling *= PEAK_HANDLING_FACTOR
        ready = o.paid + int(min(handling, 72.0) * MS_HOUR)
        if rng.random() < CUSTOMER_CANCEL_P:  # the customer changes their mind before shipping
            canceled = o.paid + int((ready - o.paid) * rng.uniform(0.2, 0.8))
            self.ship_event(
                o.shipment, "canceled", canceled, origin_location, "canceled by customer"
            )
            return
        held = self.open_incident("warehouse", o.origin, ready)
        if held is not None:
            detail = f"held at warehouse: {held.incident_id} {held.description}"
            self.ship_event(o.shipment, "exception", ready, origin_location, detail, "warehouse")
            ready = held.resolved + int(math.exp(rng.gauss(0, 0.5)) * 2 * MS_HOUR)
        shipped = _shift_into_hours(ready, 6, 22, rng)

        region = o.customer.city.region
        days = o.mode.base_days + o.distance / o.mode.km_per_day
        days *= REGION_FACTOR[region] * _CARRIER[o.carrier].factor
        if peak:
            days *= PEAK_TRANSIT_FACTOR
        if o.kg > 30:
            days += 0.6
        elif o.kg > 10:
            days += 0.25
        if o.customer.city.country in CUSTOMS_COUNTRIES:
            days += CUSTOMS_DAYS * math.exp(rng.gauss(0, 0.4))
        days *= math.exp(rng.gauss(0, 0.22))
        blocked = self.open_incident("carrier", (o.carrier, region), shipped)
        if blocked is not None:
            days = days * 1.25 + blocked.delay_days * rng.uniform(0.7, 1.3)
        problem = rng.random() < RANDOM_EXCEPTION_P
        if problem:
            days += rng.uniform(0.5, 1.5)
        transit = int(days * MS_DAY)
        delivered = _shift_into_hours(_add_transit(shipped, transit), 8, 21, rng)

        self.ship_event(o.shipment, "shipped", shipped, origin_location, None)
        wh, c = WAREHOUSES[o.origin], o.customer
        f = rng.uniform(0.35, 0.6)
        midway = {
            "lat": round(wh.lat + (c.lat - wh.lat) * f, 4),
            "lon": round(wh.lon + (c.lon - wh.lon) * f, 4),
        }
        self.ship_event(o.shipment, "in_transit", shipped + int(transit * f), midway, None)
        if blocked is not None:
            detail = f"carrier incident {blocked.incident_id}: {blocked.description}"
            at = shipped + int(transit * 0.25)
            self.ship_event(o.shipment, "exception", at, blocked.location, detail, "carrier")
        elif problem:
            at = shipped + int(transit * 0.7)
            detail = "address not verified"
            self.ship_event(o.shipment, "exception", at, o.destination, detail, "address")
        self.ship_event(o.shipment, "delivered", delivered, o.destination, None)

    def ship_event(
        self,
        shipment: dict[str, Any],
        status: str,
        at: int,
        location: dict[str, Any] | None,
        detail: str | None,
        cause: str | None = None,
    ) -> None:
        """Schedule one tracking event, identified by order, status and (exceptions) cause.

        An order can have both a warehouse and a carrier exception, hence the cause in the id.
        """
        order_id = shipment["order_id"]
        self.push(
            make_event(
                SOURCE,
                "shipment_status",
                _to_dt(at),
                (order_id, status) if cause is None else (order_id, status, cause),
                order_id,
                status=status,
                location=dict(location) if location else None,
                detail=detail,
                **shipment,
            ),
            at,
        )

    # -- web logs -------------------------------------------------------------------------------

    def web_access(
        self, since: int, until: int, order_id: str, items: list[dict[str, Any]], buyer: str
    ) -> None:
        """Schedule the page views between two orders.

        About a third are the next buyer looking at what they are about to order (client = the
        buyer, ``order_id`` set); the rest are other customers and anonymous visitors browsing
        popular products.
        """
        rng = self.web_rng
        for _ in range(_poisson(rng, self.config.web_access_per_order)):
            at = since + int(rng.random() * (until - since))
            if rng.random() < 0.35:
                item = rng.choice(items)
                product = self.products_by_id[item["product_id"]]
                client, linked = buyer, order_id
            else:
                product = rng.choices(self.products, cum_weights=self.product_cum)[0]
                if rng.random() < 0.5:
                    client = self.customers.get(self.customers.draw(rng)).customer_id
                else:
                    visitor = rng.randrange(4 * self.customers.size)
                    client = pseudonymise(f"{self.prefix}-visitor-{visitor}")
                linked = None
            n = next(self.web_seq)
            self.push(
                make_event(
                    SOURCE,
                    "web_access",
                    _to_dt(at),
                    (self.prefix, "web", n),
                    client,
                    order_id=linked,
                    client_hash=client,
                    url=product.url,
                    department=product.department,
                    category=product.category,
                    product=product.name,
                ),
                at,
            )

    # -- the stream ---------------------------------------------------------------------------

    def run(self) -> Iterator[SourceEvent]:
        """Yield every event in event-time order, keeping only open orders' events in memory."""
        heap = self.heap
        previous = placed = self.start_ms
        for number in range(1, self.config.orders + 1):
            placed = self.next_arrival(placed)
            # Incidents opening before this order are created before anything up to it is
            # released, so the heap never receives an event older than one already emitted.
            self.incidents_until(placed)
            event, items, buyer = self.order(number, placed)
            self.web_access(previous, placed, event.payload["order_id"], items, buyer)
            while heap and heap[0][0] <= placed:
                yield heapq.heappop(heap)[2]
            yield event
            previous = placed
            if number % 64 == 0:
                self.prune_incidents(placed)
        while heap:
            yield heapq.heappop(heap)[2]


@dataclass(frozen=True)
class _Order:
    """What fulfilment needs to know about a paid order."""

    shipment: dict[str, Any]
    placed: int
    paid: int
    origin: int
    customer: Customer
    destination: dict[str, Any]
    mode: Mode
    carrier: str
    distance: float
    kg: float


def generate(config: SyntheticConfig) -> Iterator[SourceEvent]:
    """Stream the synthetic events of ``config`` in event-time order (non-decreasing).

    Lazy: nothing is generated before the first event is asked for, and memory stays bounded by
    the orders not yet delivered. The same config always yields the same events and ids.
    """
    yield from _Simulation(config).run()


def load(config: SyntheticConfig) -> tuple[list[SourceEvent], MappingReport]:
    """All events of ``config`` in a list, with a report counting them by event type."""
    report = MappingReport(SOURCE)
    events = list(generate(config))
    report.rows_read = config.orders
    for event in events:
        report.events[event.payload["event_type"]] += 1
    return events, report
