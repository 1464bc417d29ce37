"""This module owns the names of the synthetic bank's clients (``clients.name``): a firm's legal
name for SMEs and corporates, a person's given and family name for personal clients, in the
language of the client's region, from word lists kept here (nothing is downloaded).

The bank's country speaks three languages by region, as multilingual euro-area countries do:
Dutch in the North and West, French in the South, German in the East, French and Dutch in the
Capital, and a few clients of every region speak another (``REGION_LANGUAGES``). A firm's name
follows the habits of its language: a family name, two partners' names, a family firm, a coined
brand or a place, with a trade word of its sector where the language puts it ("Peeters Bouw",
"Boulangerie Dubois", "Weber Logistik") and the legal form of its size: "BV", "SRL", "GmbH" for
most SMEs (a sole trader has none), "NV", "SA", "AG" for most corporates, whose names also sound
larger ("Holding", "Groupe", "International"). A person is a given name, sometimes a middle
initial, and a family name, sometimes a double one ("Anna M. Peeters-Maes").

Names are varied enough that a search by a full name finds one client or a few (a test bounds
how many share one name among 20,000 clients); duplicates remain, as in real banks. Every choice
is one uniform per client from the chunk's own stream (``STREAM_NAMES``), words are taken by
index and joined by Arrow: a name costs one column per client, without a loop over clients, and
drawing names changes nothing else the generator writes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rmreco.domain.contract import CLIENTS
from rmreco.synthetic.arrays import Array, spawn_rng
from rmreco.synthetic.parameters import (
    CORPORATE,
    PERSONAL,
    REGIONS,
    SECTOR_CODES,
    SME,
    STREAM_NAMES,
)

#: The languages of the bank's country, in the order of the weights below.
LANGUAGES = ("nl", "fr", "de")
NL, FR, DE = range(3)
#: Share of each language (Dutch, French, German) among the clients of a region.
REGION_LANGUAGES: dict[str, tuple[float, float, float]] = {
    "North": (0.90, 0.07, 0.03),
    "South": (0.06, 0.90, 0.04),
    "East": (0.08, 0.12, 0.80),
    "West": (0.88, 0.10, 0.02),
    "Capital": (0.35, 0.60, 0.05),
}
#: The column ``clients.name`` takes in the clients table, after ``client_id``.
NAME_COLUMN = "name"

# --- the word lists, by language (Dutch, French, German) ---------------------------------------

_GIVEN = (
    (
        "Jan", "Pieter", "Luc", "Marc", "Tom", "Bart", "Koen", "Wim", "Dirk", "Geert", "Stijn",
        "Jeroen", "Wout", "Lars", "Arne", "Joris", "Thomas", "Sander", "Jens", "Ruben",
        "Maarten", "Frank", "Pieter-Jan", "Kris", "Hilde", "An", "Els", "Katrien", "Sofie",
        "Lies", "Griet", "Nele", "Inge", "Veerle", "Sarah", "Leen", "Eline", "Lotte", "Femke",
        "Jolien", "Marieke", "Annelies", "Ilse", "Liesbeth", "Hanne", "Emma", "Noor", "Lien",
        "Tine", "Joke", "Karen", "Mieke", "Bert", "Dries", "Filip", "Gert", "Hans", "Ivo",
        "Johan", "Kurt", "Nico", "Robbe", "Seppe", "Toon", "Vincent", "Ward", "Anke",
        "Babette", "Charlotte", "Evi", "Fien", "Ine",
    ),
    (
        "Jean", "Pierre", "Michel", "Philippe", "Alain", "Luc", "Marc", "Olivier", "Nicolas",
        "Julien", "Thomas", "Antoine", "Maxime", "Hugo", "Louis", "Arnaud", "Benoît",
        "Christophe", "François", "Laurent", "Vincent", "Sébastien", "Didier", "Jean-Marc",
        "Jean-Pierre", "Marie", "Anne", "Catherine", "Isabelle", "Sophie", "Nathalie",
        "Valérie", "Christine", "Julie", "Camille", "Élise", "Claire", "Charlotte", "Manon",
        "Léa", "Chloé", "Pauline", "Aurélie", "Céline", "Sandrine", "Véronique", "Martine",
        "Brigitte", "Marie-Claire", "Juliette", "Bernard", "Claude", "Damien", "Emmanuel",
        "Fabrice", "Guillaume", "Jérôme", "Lionel", "Patrick", "Quentin", "Adèle",
        "Bénédicte", "Delphine", "Florence", "Gaëlle", "Hélène", "Laure", "Mélanie", "Nadine",
        "Sylvie",
    ),
    (
        "Thomas", "Michael", "Andreas", "Stefan", "Markus", "Christian", "Frank", "Jürgen",
        "Klaus", "Peter", "Uwe", "Wolfgang", "Martin", "Jan", "Lukas", "Felix", "Jonas",
        "Tobias", "Florian", "Matthias", "Sebastian", "Dirk", "Ralf", "Bernd", "Karl",
        "Sabine", "Claudia", "Andrea", "Petra", "Susanne", "Nicole", "Stefanie", "Birgit",
        "Monika", "Julia", "Anna", "Katharina", "Lena", "Laura", "Sarah", "Lisa", "Hannah",
        "Miriam", "Ute", "Heike", "Karin", "Kerstin", "Anja", "Silke", "Johanna", "Alexander",
        "Benedikt", "Daniel", "Georg", "Helmut", "Jens", "Kai", "Manfred", "Norbert", "Rainer",
        "Angelika", "Bettina", "Christina", "Doris", "Elke", "Gabriele", "Ingrid", "Jutta",
        "Marion", "Renate",
    ),
)  # fmt: skip
_FAMILY = (
    (
        "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
        "Wouters", "De Smet", "Vermeulen", "Van Damme", "Hermans", "Aerts", "Pauwels",
        "Martens", "Michiels", "Declercq", "Claeys", "Verstraete", "Smets", "Van de Velde",
        "Coppens", "Verhoeven", "Stevens", "Lambrechts", "Cools", "Baert", "Hendrickx",
        "De Backer", "Van den Broeck", "Verbeke", "Segers", "Wuyts", "Bogaert", "Van Dyck",
        "Mariën", "Van Hoof", "De Vos", "Geerts", "Roels", "Verlinden", "De Wit", "Dierickx",
        "Vandenberghe", "Van Acker", "De Cock", "Huysmans", "Thys", "Verbruggen", "Van Looy",
        "Vermeersch", "Callens", "Van Hecke", "Moens", "Sels", "Brouwers", "Boonen",
        "Timmermans", "Govaerts", "Renders", "Daems", "Vanhove", "Verschueren", "Van Camp",
        "De Meyer", "Wauters", "Desmet", "Van Gucht", "Beckers", "Van Houtte", "Verhaeghe",
        "Coene", "De Ridder", "Van Laere", "Deconinck", "Lemmens", "Schepers", "Bosmans",
        "Van Aken", "Jansen", "Hoste", "Vanneste", "De Groote", "Dewulf", "Van Nieuwenhuyse",
        "Vervoort", "Poelmans", "Gielen", "Vos", "Meeus", "Nijs", "Van Mol", "Cuypers",
        "Vercammen", "Wils", "Bruynseels", "Droogmans", "Van Steen", "Lenaerts",
    ),
    (
        "Dubois", "Lambert", "Dupont", "Martin", "Simon", "Laurent", "Leroy", "Renard",
        "Lejeune", "Leclercq", "Denis", "Lemaire", "Dumont", "Collignon", "Gilson", "François",
        "Mathieu", "Noël", "Henrard", "Goffin", "Léonard", "Thiry", "Lecomte", "Dupuis",
        "Michel", "Charlier", "Piette", "Masson", "Lefebvre", "Fontaine", "Jacques", "Collard",
        "Gérard", "Hubert", "Lallemand", "Marchal", "Pirard", "Rousseau", "Bodart", "Evrard",
        "Delvaux", "Dethier", "Delhaye", "Hardy", "Moreau", "Bertrand", "Lefèvre", "Girard",
        "Mercier", "Petit", "Bernard", "Roussel", "Fournier", "Morel", "Blanc", "Guérin",
        "Faure", "Chevalier", "Marchand", "Robin", "Gauthier", "Perrin", "Baudouin", "Colin",
        "Delcourt", "Deprez", "Hanquet", "Wilmotte", "Bastin", "Closset", "Lemoine", "Dufour",
        "Gillet", "Jadot", "Lhoest", "Remacle", "Poncelet", "Warnier", "Delforge", "Lurquin",
        "Baudson", "Dessy", "Paquet", "Detry", "Gobert", "Lebrun", "Carlier", "Hennuy",
        "Jacquet", "Wéry", "Lhomme", "Mahy", "Rondeaux", "Tilmant", "Dury", "Gilles", "Lardinois",
        "Nizet", "Thonon", "Xhignesse",
    ),
    (
        "Müller", "Schmitz", "Schmidt", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer",
        "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz",
        "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner",
        "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann",
        "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz",
        "Möller", "Weiß", "Jung", "Hahn", "Keller", "Vogel", "Friedrich", "Günther", "Frank",
        "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann", "Franke", "Albrecht",
        "Ludwig", "Sommer", "Kessler", "Brandt", "Heinen", "Kreutz", "Mertes", "Theissen",
        "Cremer", "Jost", "Pauels", "Hilgers", "Schulz", "Kraus", "Böhm", "Schuster",
        "Dietrich", "Pohl", "Engel", "Horn", "Busch", "Bergmann", "Voigt", "Sauer", "Arnold",
        "Wolff", "Pfeiffer", "Seidel", "Brinkmann", "Haas", "Schreiber", "Graf", "Dietz", "Kühn",
        "Ernst", "Jäger", "Otto", "Lindner", "Vogt", "Kirsch", "Gerards", "Offermann",
    ),
)  # fmt: skip
_PLACES = (
    (
        "Schelde", "Kempen", "Maasland", "Westhoek", "Waasland", "Pajottenland", "Meetjesland",
        "Hageland", "Polder", "Leie", "Dender", "Brabant",
    ),
    (
        "Ardennes", "Meuse", "Sambre", "Condroz", "Hesbaye", "Famenne", "Gaume", "Brabant",
        "Hainaut", "Ourthe", "Semois", "Borinage",
    ),
    (
        "Eifel", "Venn", "Grenzland", "Rhein", "Mosel", "Ahr", "Rur", "Our", "Hunsrück",
        "Westerwald", "Saar", "Taunus",
    ),
)  # fmt: skip
#: Trade words by NACE section, as templates: "{}" is where the firm's own name goes.
_TRADES: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "A": ("{} Landbouw", "Kwekerij {}", "{} Agro", "Hoeve {}"),
        "C": ("{} Metaal", "Schrijnwerkerij {}", "{} Kunststoffen", "{} Machinebouw"),
        "F": ("Bouwbedrijf {}", "{} Bouw", "{} Dakwerken", "Aannemingen {}"),
        "G": ("{} Handel", "Groothandel {}", "{} Distributie", "Garage {}"),
        "H": ("Transport {}", "{} Logistiek", "{} Transport", "Koeriersdienst {}"),
        "I": ("Brasserie {}", "Bakkerij {}", "Hotel {}", "{} Catering"),
        "J": ("{} IT", "{} Software", "{} Media", "{} Digital"),
        "L": ("{} Vastgoed", "Immo {}", "{} Patrimonium", "{} Projectontwikkeling"),
        "M": ("Accountantskantoor {}", "Advocatenkantoor {}", "{} Consult", "Architecten {}"),
        "N": ("{} Schoonmaak", "{} Services", "{} Interim", "{} Beveiliging"),
        "Q": ("Apotheek {}", "Tandartspraktijk {}", "{} Zorg", "Medisch Centrum {}"),
    },
    {
        "A": ("Ferme {}", "Pépinières {}", "{} Agri", "Élevage {}"),
        "C": ("Menuiserie {}", "Ateliers {}", "{} Métal", "{} Plastiques"),
        "F": ("Construction {}", "Toitures {}", "Entreprise {}", "{} Bâtiment"),
        "G": ("Garage {}", "Établissements {}", "{} Distribution", "Comptoir {}"),
        "H": ("Transports {}", "{} Logistique", "Déménagements {}", "Messageries {}"),
        "I": ("Boulangerie {}", "Brasserie {}", "Hôtel {}", "Traiteur {}"),
        "J": ("{} Informatique", "{} Software", "{} Médias", "{} Digital"),
        "L": ("Immo {}", "{} Immobilier", "Résidence {}", "{} Promotion"),
        "M": ("Fiduciaire {}", "Cabinet {}", "Bureau d'études {}", "{} Conseil"),
        "N": ("{} Nettoyage", "{} Services", "{} Intérim", "{} Sécurité"),
        "Q": ("Pharmacie {}", "Cabinet dentaire {}", "Centre médical {}", "{} Santé"),
    },
    {
        "A": ("{} Agrar", "Gärtnerei {}", "Hof {}", "{} Forst"),
        "C": ("{} Metallbau", "Schreinerei {}", "{} Maschinenbau", "{} Kunststofftechnik"),
        "F": ("{} Bau", "Bauunternehmen {}", "{} Dachbau", "{} Haustechnik"),
        "G": ("{} Handel", "Autohaus {}", "{} Vertrieb", "{} Großhandel"),
        "H": ("{} Transporte", "{} Logistik", "Spedition {}", "{} Kurierdienst"),
        "I": ("Bäckerei {}", "Gasthof {}", "Hotel {}", "{} Catering"),
        "J": ("{} IT", "{} Software", "{} Medien", "{} Digital"),
        "L": ("{} Immobilien", "{} Grundbesitz", "{} Hausverwaltung", "{} Projektbau"),
        "M": ("Steuerberatung {}", "Kanzlei {}", "Ingenieurbüro {}", "{} Consulting"),
        "N": ("{} Gebäudereinigung", "{} Service", "{} Personaldienste", "{} Sicherheit"),
        "Q": ("Apotheke {}", "Zahnarztpraxis {}", "{} Pflege", "Praxis {}"),
    },
)
_FAMILY_FIRMS = (
    ("{} & Zonen", "Gebroeders {}", "{} & Co"),
    ("{} & Fils", "{} Frères", "{} & Cie"),
    ("{} & Söhne", "Gebrüder {}", "{} & Co."),
)
#: What makes a corporate sound larger than a corner shop.
_LARGER = (
    ("{} Groep", "{} Holding", "{} International", "{} Industries"),
    ("Groupe {}", "{} Holding", "{} International", "{} Industries"),
    ("{} Gruppe", "{} Holding", "{} International", "{} Industrie"),
)
#: Legal forms and their shares, by language: SMEs, then corporates.
_SME_FORMS = (
    (("BV", 0.80), ("CommV", 0.08), ("VOF", 0.07), ("CV", 0.05)),
    (("SRL", 0.82), ("SComm", 0.06), ("SNC", 0.06), ("SC", 0.06)),
    (("GmbH", 0.75), ("KG", 0.10), ("GmbH & Co. KG", 0.10), ("OHG", 0.05)),
)
_CORPORATE_FORMS = (
    (("NV", 0.75), ("BV", 0.25)),
    (("SA", 0.75), ("SRL", 0.25)),
    (("AG", 0.60), ("GmbH", 0.25), ("GmbH & Co. KG", 0.10), ("SE", 0.05)),
)
# Coined brand names: a first syllable, perhaps a middle one and an ending ("Nor" "en" "ta").
_COINED_FIRST = (
    "Al", "Ar", "Bel", "Cal", "Cor", "Del", "Ev", "Fal", "Gal", "Hel", "Kor", "Lum", "Mar",
    "Nor", "Or", "Pal", "Quin", "Ros", "Sol", "Tar", "Ul", "Val", "Ver", "Vit", "Zen", "Brit",
    "Cen", "Dor", "Elv", "Fin", "Lin", "Mon", "Nov", "Prim", "Sten", "Trim", "Vel", "Ast",
    "Ben", "Xan",
)  # fmt: skip
_COINED_MIDDLE = ("", "", "", "an", "en", "ol", "er", "iv", "os", "al", "im", "in")
_COINED_END = (
    "ia", "is", "ex", "on", "ta", "um", "ix", "us", "o", "ent", "ica", "era", "ion", "ora",
    "eon", "ant", "ea", "ium", "via", "ara",
)  # fmt: skip
_INITIALS = tuple(f"{letter}." for letter in "ABCDEFGHJKLMNPRSTVW")

# --- how names are put together ----------------------------------------------------------------

#: How a firm's own name is made, and each way's share among SMEs and among corporates.
SURNAME, PARTNERS, FAMILY_FIRM, COINED, PLACE = range(5)
_PATTERN_SHARES: dict[int, tuple[float, ...]] = {
    SME: (0.38, 0.12, 0.06, 0.39, 0.05),
    CORPORATE: (0.25, 0.12, 0.0, 0.51, 0.12),
}
#: Chance that a firm's name carries a trade word, by pattern: SMEs, then corporates.
_TRADE_SHARE: dict[int, Array] = {
    SME: np.array([0.92, 0.45, 0.5, 0.8, 1.0]),
    CORPORATE: np.array([0.3, 0.2, 0.0, 0.45, 1.0]),
}
#: Chance that a corporate's name carries a word that makes it sound larger.
_LARGER_SHARE = 0.65
#: Chance that a small firm named after its owner carries the owner's given name too
#: ("Boulangerie Pierre Martin"), and that such a firm is a sole trader without a legal form.
_OWNER_GIVEN_SHARE = 0.3
_SOLE_TRADER_SHARE = 0.15
#: Chance that a person's name has a middle initial, and a double family name.
_INITIAL_SHARE = 0.3
_DOUBLE_FAMILY_SHARE = 0.10

# One uniform per client and choice, a column each, so that no choice shifts another's draws.
(
    _U_LANGUAGE,
    _U_PATTERN,
    _U_GIVEN,
    _U_HAS_INITIAL,
    _U_INITIAL,
    _U_FAMILY,
    _U_HAS_SECOND,
    _U_SECOND,
    _U_HAS_TRADE,
    _U_TRADE,
    _U_FORM,
    _U_FIRST,
    _U_MIDDLE,
    _U_END,
    _U_PLACE,
    _U_HAS_LARGER,
    _U_LARGER,
    _U_FAMILY_FIRM,
    _U_OWNER_GIVEN,
    _U_SOLE_TRADER,
) = range(20)
_DRAWS = 20


class _Lists:
    """Word lists of several groups (languages, or language and sector), flattened so that one
    word per row is taken by index; a word may be a template whose "{}" marks the name."""

    def __init__(
        self, lists: Sequence[Sequence[str]], weights: Sequence[Sequence[float]] | None = None
    ) -> None:
        if not lists or any(len(words) == 0 for words in lists):
            raise ValueError("every group needs at least one word")
        self.sizes = np.array([len(words) for words in lists], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        flat = [word for words in lists for word in words]
        self.words = pa.array(flat, type=pa.string())
        self.before = pa.array([_part(w, 0) for w in flat], type=pa.string())
        self.after = pa.array([_part(w, 1) for w in flat], type=pa.string())
        self.cumulative: Array | None = None
        if weights is not None:
            cumulative = np.ones((len(lists), int(self.sizes.max())))
            for g, shares in enumerate(weights):
                cum = np.cumsum(shares) / np.sum(shares)
                cumulative[g, : len(cum)] = cum
            self.cumulative = cumulative

    def within(self, group: Array, u: Array) -> Array:
        """Each row's place in its group's list, by its uniform (weighted when given)."""
        sizes = self.sizes[group]
        if self.cumulative is None:
            return np.minimum((u * sizes).astype(np.int64), sizes - 1)
        place = (u[:, None] >= self.cumulative[group]).sum(axis=1)
        return np.minimum(place, sizes - 1)

    def index(self, group: Array, u: Array) -> Array:
        """Each row's index into the flattened lists."""
        index: Array = self.offsets[group] + self.within(group, u)
        return index

    def take(self, index: Array, use: Array | None = None) -> pa.Array:
        """The words at ``index``; null where ``use`` is false."""
        return self.words.take(_indices(index, use))

    def take_template(self, index: Array, use: Array | None = None) -> tuple[pa.Array, pa.Array]:
        """What the templates at ``index`` put before and after the name; null where a
        template puts nothing there, or where ``use`` is false."""
        indices = _indices(index, use)
        return self.before.take(indices), self.after.take(indices)


def _part(template: str, side: int) -> str | None:
    """What a template puts before (side 0) or after (side 1) the name; None for nothing."""
    if "{}" not in template:
        return template if side == 0 else None
    text = template.split("{}")[side].strip()
    return text or None


def _indices(index: Array, use: Array | None) -> pa.Array:
    return pa.array(
        np.asarray(index, dtype=np.int64), type=pa.int64(), mask=None if use is None else ~use
    )


@dataclass(frozen=True)
class _WordLists:
    """Every word list as Arrow arrays, built at the first name drawn, not at import (the CLI
    imports this package and must start in a fraction of a second)."""

    given: _Lists
    family: _Lists
    place: _Lists
    trade: _Lists
    family_firm: _Lists
    larger: _Lists
    sme_form: _Lists
    corporate_form: _Lists
    first: _Lists
    middle: _Lists
    end: _Lists
    initial: _Lists


@functools.cache
def _word_lists() -> _WordLists:
    return _WordLists(
        given=_Lists(_GIVEN),
        family=_Lists(_FAMILY),
        place=_Lists(_PLACES),
        trade=_Lists([trades[code] for trades in _TRADES for code in SECTOR_CODES]),
        family_firm=_Lists(_FAMILY_FIRMS),
        larger=_Lists(_LARGER),
        sme_form=_Lists(
            [[f for f, _ in forms] for forms in _SME_FORMS],
            [[w for _, w in forms] for forms in _SME_FORMS],
        ),
        corporate_form=_Lists(
            [[f for f, _ in forms] for forms in _CORPORATE_FORMS],
            [[w for _, w in forms] for forms in _CORPORATE_FORMS],
        ),
        first=_Lists([_COINED_FIRST]),
        middle=_Lists([_COINED_MIDDLE]),
        end=_Lists([_COINED_END]),
        initial=_Lists([_INITIALS]),
    )


def _join(parts: Sequence[pa.Array], separator: str) -> pa.Array:
    """Row by row, the parts that are not null joined by ``separator``."""
    return pc.binary_join_element_wise(*parts, separator, null_handling="skip")


def client_names(
    rng: np.random.Generator, segment: Array, region: Array, sector: Array
) -> pa.Array:
    """A name for each client: a firm's legal name (SMEs and corporates) or a person's name.

    Args:
        rng: the stream the names draw from (nothing else draws from it).
        segment: each client's segment code (``parameters.SEGMENTS``).
        region: each client's region, an index into ``parameters.REGIONS``.
        sector: each firm's sector, an index into ``parameters.SECTOR_CODES``; ignored for
            persons (any value, e.g. -1).
    """
    words = _word_lists()
    segment = np.asarray(segment, dtype=np.int64)
    n = segment.size
    u = rng.random((n, _DRAWS))
    weights = np.array([REGION_LANGUAGES[r] for r in REGIONS])
    cumulative = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    language = (u[:, _U_LANGUAGE, None] >= cumulative[np.asarray(region)]).sum(axis=1)
    language = np.minimum(language, len(LANGUAGES) - 1)
    is_person = segment == PERSONAL
    is_corporate = segment == CORPORATE
    is_firm = ~is_person

    # the people: a person's own name, a firm's owner and partners
    given_index = words.given.index(language, u[:, _U_GIVEN])
    first = words.family.within(language, u[:, _U_FAMILY])
    # a second family name other than the first: a step of 1 .. size - 1 along the list
    sizes = words.family.sizes[language]
    step = 1 + np.minimum((u[:, _U_SECOND] * (sizes - 1)).astype(np.int64), sizes - 2)
    second = (first + step) % sizes
    family = words.family.take(words.family.offsets[language] + first)
    second_index = words.family.offsets[language] + second

    # firms: the way the name is made, by segment
    pattern = np.zeros(n, dtype=np.int64)
    for code, shares in _PATTERN_SHARES.items():
        rows = segment == code
        edges = np.cumsum(shares) / np.sum(shares)
        pattern[rows] = np.minimum(
            (u[rows, _U_PATTERN, None] >= edges).sum(axis=1), len(shares) - 1
        )
    pattern[is_person] = -1
    small = segment == SME
    owner_given = small & (pattern == SURNAME) & (u[:, _U_OWNER_GIVEN] < _OWNER_GIVEN_SHARE)
    coined = _join(
        [
            words.first.take(words.first.index(np.zeros(n, np.int64), u[:, _U_FIRST])),
            words.middle.take(words.middle.index(np.zeros(n, np.int64), u[:, _U_MIDDLE])),
            words.end.take(words.end.index(np.zeros(n, np.int64), u[:, _U_END])),
        ],
        "",
    )
    candidates = {
        SURNAME: _join([words.given.take(given_index, owner_given), family], " "),
        PARTNERS: _join([family, words.family.take(second_index)], " & "),
        FAMILY_FIRM: family,
        COINED: coined,
        PLACE: words.place.take(words.place.index(language, u[:, _U_PLACE])),
    }
    own = pa.concat_arrays([candidates[p] for p in range(len(candidates))]).take(
        pa.array(np.maximum(pattern, 0) * n + np.arange(n))
    )
    family_firm_before, family_firm_after = words.family_firm.take_template(
        words.family_firm.index(language, u[:, _U_FAMILY_FIRM]), pattern == FAMILY_FIRM
    )

    trade_share = np.zeros(n)
    for code, by_pattern in _TRADE_SHARE.items():
        rows = segment == code
        trade_share[rows] = by_pattern[pattern[rows]]
    has_trade = is_firm & (u[:, _U_HAS_TRADE] < trade_share)
    trade_group = language * len(SECTOR_CODES) + np.clip(sector, 0, len(SECTOR_CODES) - 1)
    trade_before, trade_after = words.trade.take_template(
        words.trade.index(trade_group, u[:, _U_TRADE]), has_trade
    )
    has_larger = is_corporate & (u[:, _U_HAS_LARGER] < _LARGER_SHARE)
    larger_before, larger_after = words.larger.take_template(
        words.larger.index(language, u[:, _U_LARGER]), has_larger
    )
    sole_trader = (
        small & (pattern == SURNAME) & has_trade & (u[:, _U_SOLE_TRADER] < _SOLE_TRADER_SHARE)
    )
    form = pc.if_else(
        pa.array(is_corporate),
        words.corporate_form.take(words.corporate_form.index(language, u[:, _U_FORM])),
        words.sme_form.take(words.sme_form.index(language, u[:, _U_FORM]), is_firm & ~sole_trader),
    )
    firm = _join(
        [
            larger_before,
            trade_before,
            family_firm_before,
            own,
            family_firm_after,
            trade_after,
            larger_after,
            form,
        ],
        " ",
    )

    # persons: given name, perhaps a middle initial, family name, perhaps a double one
    has_initial = u[:, _U_HAS_INITIAL] < _INITIAL_SHARE
    initial = words.initial.take(
        words.initial.index(np.zeros(n, np.int64), u[:, _U_INITIAL]), has_initial
    )
    double = u[:, _U_HAS_SECOND] < _DOUBLE_FAMILY_SHARE
    surname = _join([family, words.family.take(second_index, double)], "-")
    person = _join([words.given.take(given_index), initial, surname], " ")
    names: pa.Array = pc.if_else(pa.array(is_person), person, firm)
    return names


def with_names(clients: pa.Table, seed: int, chunk: int, segment: Array, region: Array) -> pa.Table:
    """``clients`` (one chunk's clients table, in client order) with their names as the column
    after ``client_id``, drawn from the chunk's names stream.

    ``segment`` and ``region`` are the chunk's clients' codes (``Bank.segment``,
    ``Bank.region``); the sector is read from the table.
    """
    sector = (
        pc.index_in(clients.column("sector"), value_set=pa.array(SECTOR_CODES))
        .fill_null(-1)
        .to_numpy()
    )
    names = client_names(spawn_rng(seed, STREAM_NAMES, chunk), segment, region, sector)
    before = CLIENTS.column_names[: CLIENTS.column_names.index(NAME_COLUMN)]
    place = sum(1 for c in clients.column_names if c in before)  # the contract's order
    return clients.add_column(place, NAME_COLUMN, names)
