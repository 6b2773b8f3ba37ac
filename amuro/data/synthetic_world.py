"""The synthetic suite's two domains: their people, attributes, places and goods, and the sentence patterns
that state them (``amuro.data.synthetic`` builds the tasks and the corpus from them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attribute:
    values: tuple[str, ...]
    states: tuple[str, ...]  # ways to state "{name} ... {value}"
    negation: str  # "{name} ... not ... {value}"
    question: str  # asks for the value


@dataclass(frozen=True)
class Domain:
    names: tuple[str, ...]
    attributes: dict[str, Attribute]
    places: tuple[str, ...]
    goods: tuple[str, ...]
    colors: tuple[str, ...]
    days: tuple[str, ...]
    transfer: tuple[str, ...]  # verbs of giving, past tense
    travel: str
    meal: str
    weather: tuple[str, ...]


TOWN = Domain(
    names=(
        "Anna",
        "Ben",
        "Clara",
        "David",
        "Elena",
        "Felix",
        "Grace",
        "Hugo",
        "Iris",
        "Jonas",
        "Kate",
        "Leo",
        "Maria",
        "Nina",
        "Oscar",
        "Paula",
        "Quinn",
        "Rosa",
        "Sam",
        "Tara",
        "Victor",
        "Wendy",
        "Yusuf",
        "Zoe",
        "Adam",
        "Bella",
        "Carl",
        "Diana",
        "Emil",
        "Fiona",
    ),
    attributes={
        "job": Attribute(
            (
                "baker",
                "teacher",
                "doctor",
                "farmer",
                "painter",
                "nurse",
                "pilot",
                "tailor",
                "chemist",
                "lawyer",
                "carpenter",
                "librarian",
            ),
            ("{name} is a {value}.", "{name} works as a {value}."),
            "{name} is not a {value}.",
            "What does {name} do for a living?",
        ),
        "home": Attribute(
            (
                "Milltown",
                "Oakridge",
                "Brookfield",
                "Riverton",
                "Ashford",
                "Cedarville",
                "Dunmore",
                "Elmwood",
                "Fairhaven",
                "Glenrock",
            ),
            ("{name} lives in {value}.", "{name} has a house in {value}."),
            "{name} does not live in {value}.",
            "Where does {name} live?",
        ),
        "pet": Attribute(
            ("cat", "dog", "parrot", "rabbit", "hamster", "turtle", "goldfish", "pony"),
            ("{name} has a pet {value}.", "{name} keeps a {value} at home."),
            "{name} does not have a {value}.",
            "What pet does {name} have?",
        ),
        "hobby": Attribute(
            ("chess", "gardening", "swimming", "cycling", "singing", "fishing", "knitting", "running"),
            ("{name} enjoys {value}.", "In the evenings {name} likes {value}."),
            "{name} does not enjoy {value}.",
            "What does {name} enjoy in free time?",
        ),
    },
    places=("Milltown", "Oakridge", "Brookfield", "Riverton", "Ashford", "Cedarville", "Dunmore", "Elmwood"),
    goods=("lamp", "bicycle", "kettle", "scarf", "clock", "basket", "umbrella", "guitar", "jacket", "teapot"),
    colors=("red", "blue", "green", "yellow", "white", "black", "brown", "grey"),
    days=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    transfer=("gave", "sold", "lent", "sent"),
    travel="travelled to",
    meal="had dinner with",
    weather=("The weather was cold.", "It rained all morning.", "The streets were busy.", "The sun was out."),
)

REALM = Domain(
    names=(
        "Aldric",
        "Brienne",
        "Cedric",
        "Dagny",
        "Eamon",
        "Freya",
        "Gawain",
        "Halvard",
        "Isolde",
        "Joren",
        "Kaelin",
        "Lysa",
        "Merek",
        "Nessa",
        "Orin",
        "Perrin",
        "Rowena",
        "Sigrid",
        "Tristan",
        "Ulric",
    ),
    attributes={
        "rank": Attribute(
            ("knight", "archer", "wizard", "squire", "herald", "blacksmith", "healer", "ranger"),
            ("{name} serves as a {value}.", "{name} was sworn in as a {value}."),
            "{name} is no {value}.",
            "What rank does {name} hold?",
        ),
        "keep": Attribute(
            ("Stormhold", "Ravenspire", "Thornwall", "Highcliff", "Duskmoor", "Ironvale", "Wolfden", "Greywater"),
            ("{name} guards the castle of {value}.", "{name} is stationed at {value}."),
            "{name} does not guard {value}.",
            "Which castle does {name} guard?",
        ),
        "beast": Attribute(
            ("falcon", "warhorse", "hound", "raven", "stag", "wolf"),
            ("{name} rides with a {value}.", "A {value} follows {name} everywhere."),
            "{name} has no {value}.",
            "Which beast follows {name}?",
        ),
        "oath": Attribute(
            ("silence", "poverty", "vengeance", "mercy", "valor", "loyalty"),
            ("{name} swore an oath of {value}.", "{name} is bound by a vow of {value}."),
            "{name} never swore an oath of {value}.",
            "What oath did {name} swear?",
        ),
    },
    places=("Stormhold", "Ravenspire", "Thornwall", "Highcliff", "Duskmoor", "Ironvale"),
    goods=("sword", "shield", "banner", "amulet", "helm", "lantern", "chalice", "crown"),
    colors=("golden", "silver", "crimson", "azure", "ebony", "ivory"),
    days=("the first moon", "the second moon", "the harvest feast", "the winter solstice", "the spring tide"),
    transfer=("handed", "offered", "pledged", "entrusted"),
    travel="rode to",
    meal="feasted with",
    weather=("A storm gathered over the hills.", "Snow covered the roads.", "The banners flew high."),
)

DOMAINS = {"town": TOWN, "realm": REALM}
