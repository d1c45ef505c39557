"""The emergency rules, as data (read by :mod:`insightray.assistant.emergency`).

A rule fires when every one of its groups has a match that is not negated; a group is a
tuple of alternative regular expressions (lower case, matched on the normalised text, where
``'`` is dropped and near-misspellings of :data:`KEYWORDS` are corrected). Patterns are
written for recall: an unneeded escalation costs little, a missed one a lot.

Written for Insight Ray (Apache-2.0) from general first-aid guidance (call the emergency
number for chest pain with breathlessness, FAST stroke signs, suicidal intent, poisoning,
anaphylaxis, heavy bleeding, unresponsiveness, seizures and breathing trouble).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADVICE",
    "HEALTH_WORDS",
    "HISTORY_CUES",
    "INFORMATION_FRAMES",
    "KEYWORDS",
    "NEGATION_CUES",
    "PERSONAL_CUES",
    "PSEUDO_NEGATIONS",
    "RULES",
    "EmergencyRule",
]


@dataclass(frozen=True)
class EmergencyRule:
    """One emergency pattern: its name, category and the groups that must all match."""

    name: str
    category: str
    groups: tuple[tuple[str, ...], ...]


_MY = r"(?:my|his|her|their|the|your|our)"
_SOMEONE = r"(?:i|im|i am|ive|he|hes|she|shes|they|theyre|my \w+|someone|somebody|it)"
_CHEST_PAIN = (
    r"chest (?:pain|pains|ache|aches|tightness|pressure|discomfort|hurts?|hurting|is hurting)",
    rf"pain (?:in|on) {_MY} chest",
    r"chest (?:feels|is) (?:tight|heavy|crushed|like)",
    r"(?:crushing|squeezing|stabbing|severe) (?:pain|pressure|feeling)? ?"
    r"(?:in )?(?:my |the )?chest",
    r"heart attack",
)
_BREATHING = (
    r"short(?:ness)? (?:of|o) breath",
    r"(?:cant|can not|cannot|could not|couldnt|unable to) "
    r"(?:breathe?|get (?:a |any )?(?:air|breath))",
    r"(?:difficulty|trouble|struggling|struggles|problems?|hard time) (?:in )?breathing",
    r"(?:hard|difficult|impossible) to breathe?",
    r"struggl\w* (?:to|for) (?:breathe?|air)",
    r"gasping",
    r"not breathing|stopped breathing|isnt breathing|is not breathing|no longer breathing",
    r"breathless",
    r"out of breath",
    r"(?:cant|cannot) catch (?:my|his|her|their) breath",
)

RULES: tuple[EmergencyRule, ...] = (
    EmergencyRule("chest_pain_with_breathlessness", "cardiac", (_CHEST_PAIN, _BREATHING)),
    EmergencyRule(
        "chest_pain_with_warning_signs",
        "cardiac",
        (
            _CHEST_PAIN,
            (
                r"sweat\w*|clammy|nause\w*|vomit\w*|dizz\w*|faint\w*|light ?headed",
                r"(?:left |right )?(?:arm|jaw|neck|shoulder|back)",
                r"spread\w*|radiat\w*",
            ),
        ),
    ),
    EmergencyRule(
        "heart_attack_or_severe_chest_pain",
        "cardiac",
        (
            (
                rf"{_SOMEONE} (?:\w+ )?(?:having|have|has) a heart attack",
                r"(?:just|may have|might have|could have|think \w+) had a heart attack",
                r"heart attack (?:right )?now",
                r"(?:crushing|squeezing|severe|terrible|unbearable|excruciating) chest pain",
                r"chest pain (?:is )?(?:severe|crushing|unbearable|really bad|very bad|real bad)",
                r"chest (?:hurts|is hurting) (?:so|really|real|very) bad",
            ),
        ),
    ),
    EmergencyRule(
        "stroke_signs",
        "stroke",
        (
            (
                r"(?:face|mouth|smile|lip|eye) (?:is |was |looks? |started |seems )?droop\w*",
                r"droop\w* (?:face|mouth|smile|on one side)",
                r"slur\w* (?:speech|words|his words|her words|my words)",
                r"speech (?:is |was )?slurr\w*",
                r"(?:cant|cannot|unable to) (?:speak|talk|get (?:his|her|my) words out)",
                r"(?:sudden\w* )?(?:weak\w*|numb\w*|paralys\w*|cant move) "
                r"(?:on|in|of) (?:one|the (?:left|right)|his (?:left|right)|her (?:left|right)"
                r"|my (?:left|right)) side",
                r"one side of (?:my|his|her|the) (?:body|face) (?:is |went |feels )?"
                r"(?:numb|weak|paralyz\w*|droop\w*)",
                r"sudden\w* (?:cant|cannot|unable to) (?:move|lift|feel) (?:my|his|her) \w+ "
                r"(?:arm|leg|side)",
                rf"{_SOMEONE} (?:\w+ )?(?:having|have|has) a stroke",
                r"(?:just|may have|might have|could have|think \w+) had a stroke",
                r"(?:think|thinks|might be|could be|maybe) (?:its |it is |this is )?a stroke",
                r"stroke (?:right )?now",
                r"worst headache of (?:my|his|her|their) li\w*",
                r"sudden\w* (?:severe |terrible |the worst )?headache",
                r"sudden\w* (?:\w+ )?(?:lost|loss of|losing|cant|cannot) (?:\w+ )?"
                r"(?:vision|sight|see)",
                r"(?:lost|loss of|losing) (?:the )?(?:vision|sight) in one eye",
                r"cant see out of one eye",
                r"sudden\w* (?:confused|confusion)",
            ),
        ),
    ),
    EmergencyRule(
        "suicide_or_self_harm",
        "mental_health",
        (
            (
                r"(?<!assisted )suicid\w*",
                r"kill(?:ing)? (?:my ?self|him ?self|her ?self|themselves)",
                r"end(?:ing)? (?:my|his|her|their) (?:own )?li\w*",
                r"take (?:my|his|her|their) (?:own )?li\w*",
                r"end it all",
                r"(?:want|wants|wanna|going) to die",
                r"(?:dont|do not|doesnt|does not) want to (?:live|be alive|wake up|exist)",
                r"better off dead",
                r"no reason to (?:live|go on)",
                r"self ?harm\w*",
                r"(?:cut|cutting|hurt|hurting|harm|harming|burn|burning) "
                r"(?:my ?self|him ?self|her ?self)",
                r"hang (?:my ?self|him ?self|her ?self)",
            ),
        ),
    ),
    EmergencyRule(
        "overdose_or_poisoning",
        "poisoning",
        (
            (
                r"overdos\w*|over dos\w*",
                r"(?:took|taken|take|swallowed|ate|had) (?:a |an )?(?:whole|entire|full) "
                r"(?:bottle|pack|packet|box|strip)",
                r"(?:took|taken|swallowed|ate) (?:about |around |like |over |maybe )?(?:too many"
                r"|too much|\d\d+|twenty|thirty|forty|fifty|a handful of|a bunch of|lots of) "
                r"(?:of )?(?:\w+ ){0,2}(?:pills|tablets|capsules|of)",
                r"(?:swallowed|drank|drunk|ate|ingested|eaten|drinking) (?:some )?(?:\w+ )?"
                r"(?:bleach|poison|antifreeze|detergent|laundry pod|cleaner|pesticide|weed ?killer"
                r"|rat poison|battery|batteries|button battery|magnets?|lye|drain cleaner"
                r"|gasoline|petrol|paint thinner|lighter fluid|mushrooms?)",
                r"poison(?:ed|ing)",
                r"carbon monoxide",
            ),
        ),
    ),
    EmergencyRule(
        "anaphylaxis",
        "allergy",
        (
            (
                r"anaphyla\w*",
                r"throat (?:is |feels )?(?:closing|swelling|swollen|tight\w*|closing up)",
                r"(?:swelling|swollen|swelled) (?:of |in |up )?(?:my |his |her |the )?"
                r"(?:throat|tongue|lips?|face|mouth)",
                r"(?:throat|tongue|lips?|face|mouth) (?:is |are |started |starting )?"
                r"(?:swelling|swollen|swelled|puffing)",
                r"(?:severe|bad|serious) allergic reaction",
                r"(?:used|use|gave|give|needed|need) (?:my|his|her|an|the) epi ?pen",
            ),
        ),
    ),
    EmergencyRule(
        "severe_bleeding",
        "bleeding",
        (
            (
                r"bleeding (?:heavily|a lot|badly|profusely|nonstop|everywhere|so much|really bad)",
                r"(?:heavy|severe|uncontrolled|profuse|massive) bleeding",
                r"(?:wont|will not|doesnt|does not|cant|cannot|wouldnt) stop bleeding",
                r"bleeding (?:that )?(?:wont|will not|doesnt|does not) stop",
                r"blood (?:is )?(?:spurting|gushing|pouring|everywhere)",
                r"(?:vomiting|throwing up|coughing up|puking) (?:up )?(?:a lot of )?blood",
                r"lost a lot of blood",
            ),
        ),
    ),
    EmergencyRule(
        "unconscious",
        "unresponsive",
        (
            (
                r"unconscious",
                r"unresponsive|not responding|isnt responding|wont respond|not responsive",
                r"(?:wont|will not|cant|cannot|doesnt|does not|wouldnt) wake (?:up|him|her)",
                r"not waking up",
                r"collapsed",
                r"passed out and",
                r"knocked out",
            ),
        ),
    ),
    EmergencyRule(
        "seizure",
        "seizure",
        (
            (
                r"(?:having|had|has|is having) (?:a |another )?(?:seizure|convulsion|fit)s?",
                r"seizing|convulsing|convulsions?",
                r"seizure (?:wont|will not|that wont|that will not|is not|isnt) stop",
                r"seizure (?:for|lasting|lasted) (?:\d+|five|ten|several) minutes",
            ),
        ),
    ),
    EmergencyRule(
        "breathing_difficulty",
        "breathing",
        (
            (
                r"(?:cant|can not|cannot|unable to) breathe?",
                r"(?:difficulty|trouble|struggling|struggles|hard time) (?:in )?breathing",
                r"struggl\w* (?:to|for) (?:breathe?|air)",
                r"(?:hard|difficult|impossible) to breathe?",
                r"not breathing|stopped breathing|isnt breathing|is not breathing",
                r"gasping for (?:air|breath)",
                r"(?:lips|face|skin) (?:are |is |turning |turned |going )+blue",
                r"turning blue",
                r"choking",
                r"severe (?:shortness of breath|asthma attack)",
                r"asthma attack",
            ),
        ),
    ),
    EmergencyRule(
        "head_injury_warning",
        "injury",
        (
            (r"(?:hit|hurt|injured|banged|struck) (?:my|his|her|their) head|head injury",),
            (r"vomit\w*|throw\w* up|confus\w*|unconscious|passed out|seiz\w*|drowsy|wont wake",),
        ),
    ),
)

#: Advice shown per category (the first line of an escalation answer).
ADVICE: dict[str, str] = {
    "default": "Call your local emergency number now (911 in the US, 112 in Europe, 999 in "
    "the UK), or go to the nearest emergency department.",
    "mental_health": "Please reach out now: call or text 988 (Suicide & Crisis Lifeline, US), "
    "call your local emergency number, or go to the nearest emergency department. You do "
    "not have to face this alone.",
    "poisoning": "Call your local emergency number now, or Poison Control (1-800-222-1222 in "
    "the US). Do not make the person vomit unless told to.",
    "allergy": "Call your local emergency number now. If an adrenaline (epinephrine) "
    "auto-injector is available, use it.",
}

#: Words the misspelling correction aims at (near misses within edit distance 1, or 2 for
#: words of 8 letters or more, are corrected before the rules run).
KEYWORDS = frozenset(
    """chest pain pains breathe breath breathing shortness difficulty trouble struggling
    gasping breathless heart attack sweating drooping droopy slurred slurring speech stroke
    numbness weakness paralyzed suddenly sudden headache suicide suicidal myself himself
    herself kill killing overdose overdosed overdosing poison poisoned poisoning swallowed
    bleach antifreeze battery batteries tablets capsules pills bottle anaphylaxis
    anaphylactic allergic reaction throat swelling swollen tongue bleeding heavily blood
    vomiting unconscious unresponsive responding collapsed seizure seizures seizing
    convulsing convulsions choking turning epipen carbon monoxide crushing squeezing
    severe injury confused""".split()  # noqa: SIM905 (a word list reads better as text)
)

#: Everyday health words missing from the vocabulary that are near an emergency keyword
#: (``sneezing`` is two edits from ``seizing``): never corrected.
HEALTH_WORDS = frozenset(
    """sneezing sneezes sneezed wheezing wheezy wheezes teething vomited vomits nappies
    nappy diarrhoea diarrhea bloating bloated itching itchy""".split()  # noqa: SIM905
)

#: Cues that negate what follows them in the same clause (within a few words).
NEGATION_CUES = (
    r"no",
    r"not",
    r"never",
    r"without",
    r"denie[sd]|deny|denying",
    r"negative for",
    r"free of|absence of|absent",
    r"dont have|doesnt have|didnt have|do not have|does not have|did not have",
    r"havent had|hasnt had|have not had|has not had|hadnt had|had not had",
    r"isnt|wasnt|is not|was not|arent|are not",
    r"no longer|none|neither|nor|ruled out",
)

#: Phrases that look like negation but are not (removed before the negation check).
PSEUDO_NEGATIONS = (
    r"not sure",
    r"not certain",
    r"(?:dont|do not|didnt|did not) know",
    r"no idea",
    r"not only",
    r"no matter",
    r"cant tell",
    r"not even sure",
)

#: Words that place a finding in the past: the clause no longer counts as an emergency.
HISTORY_CUES = (
    r"last (?:year|month|week|summer|winter|spring|fall|autumn)",
    r"(?:\d+|a|one|two|three|four|five|six|several|few|many) (?:years?|months?|weeks?) ago",
    r"history of",
    r"years ago",
    r"in the past",
    r"used to",
    r"in (?:19|20)\d\d",
    r"as a (?:child|kid|teen)",
)

#: A general question (starts like a question, asks about facts, names no one): no alarm.
INFORMATION_FRAMES = (
    r"symptoms?|signs?|causes?|caused|treat\w*|prevent\w*|risk|risks|definition|define"
    r"|meaning|mean|differen\w*|types?|statistics|common|first aid|what happens|what is"
    r"|what are|how long|how do you|how does|feel like|cure|recover\w*|survival|prognosis"
)
QUESTION_STARTS = (
    r"^(?:what|whats|how|why|which|who|where|when|can|could|does|do|is|are|should|will)\b"
)
PERSONAL_CUES = (
    r"\b(?:i|im|ive|id|me|my|mine|myself|we|our|us|he|hes|she|shes|his|her|him|they|theyre"
    r"|them|their|someone|somebody|son|daughter|husband|wife|mom|mum|mother|dad|father|baby"
    r"|child|kid|toddler|friend|brother|sister|grandma|grandpa|grandmother|grandfather"
    r"|boyfriend|girlfriend|partner|patient|roommate|neighbou?r|coworker)\b"
)
