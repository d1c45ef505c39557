"""The triage rules, as data (read by :mod:`insightray.assistant.triage`).

Four levels, most urgent first: ``emergency`` (call the emergency number now; decided by
:data:`~insightray.assistant.emergency_rules.RULES` plus the ``emergency`` rules below),
``urgent`` (be seen today: urgent care, a same-day GP appointment, an out-of-hours line),
``routine`` (book an ordinary appointment if it goes on) and ``self-care`` (look after
yourself at home; a pharmacist can advise). A message with no rule matched is ``routine``.

A rule fires when every one of its groups has a match that is not negated, historical or
part of a general question (the negation machinery of
:class:`~insightray.assistant.emergency.EmergencyDetector`), and the patient's age, the
duration and the temperature (from the slots and the text) meet its conditions. The most
urgent level among the rules that fired wins.

Written for Insight Ray (Apache-2.0), in our own words, modelled on published public
guidance; no proprietary telephone-triage protocol was used or copied:

* NHS 111 / nhs.uk public condition pages: "High temperature (fever) in children" and
  "in adults", "Diarrhoea and vomiting" (urgent when fluids cannot be kept down, vomiting
  beyond 2 days or diarrhoea beyond 7 days, dehydration signs in a child under 5, bloody
  diarrhoea), "Dehydration", "Sprains and strains", "Broken ankle", "Cuts and grazes",
  "Cough" (see a GP after 3 weeks), "Pregnancy: when to call your midwife", "Sepsis",
  "Meningitis" (the glass test).
* NICE guideline NG143 "Fever in under 5s: assessment and initial management", its
  traffic-light table: age under 3 months with a temperature of 38 C or more and 3 to 6
  months with 39 C or more are high/intermediate risk; fever for 5 days or more is amber;
  a non-blanching rash, no response to social cues or not waking are red.
* The Ottawa ankle and foot rules (Stiell et al., JAMA 1993; 1994): inability to bear
  weight immediately and for four steps, or bone tenderness at the malleoli or the base of
  the fifth metatarsal, calls for an X-ray the same day.
* NICE CG151 "Neutropenic sepsis": a fever in someone having anticancer treatment is
  assessed at once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADVICE",
    "CHILD_WORDS",
    "LEVELS",
    "TRIAGE_RULES",
    "TriageRule",
]

#: Levels, most urgent first.
LEVELS: tuple[str, ...] = ("emergency", "urgent", "routine", "self-care")


@dataclass(frozen=True)
class TriageRule:
    """One triage pattern.

    Attributes:
        name: Identifier (shown as the reason).
        level: One of :data:`LEVELS`.
        groups: Groups of alternative regular expressions; each group must match.
        max_age: Fires only for a patient younger than this many years (a child named
            without an age counts as 5 years old).
        min_age: Fires only for a patient at least this old (an unknown age counts as adult).
        min_hours: Fires only when the symptom has lasted at least this long.
        max_hours: Fires only when a duration is known and shorter than this.
        min_celsius: Fires only when a temperature of at least this much is given.
        standing: The first this many groups name lasting conditions (pregnancy,
            immunosuppression): a past tense ("a transplant last year") does not dismiss them.
        source: The public guidance it follows.
    """

    name: str
    level: str
    groups: tuple[tuple[str, ...], ...]
    max_age: float | None = None
    min_age: float | None = None
    min_hours: float | None = None
    max_hours: float | None = None
    min_celsius: float | None = None
    standing: int = 0
    source: str = ""


_FEVER = (r"fever\w*|feverish|high (?:temperature|temp)|temperature|temp of|hot to (?:the )?touch",)
_VOMIT = (r"vomit\w*|throw\w* up|threw up|being sick|been sick|puk\w*",)
_DIARRHOEA = (r"diarr?h?o?ea\w*|diarrh\w*|loose (?:stools?|poo)|the runs",)
_PREGNANT = (r"pregnan\w*|expecting a baby|weeks? gone|(?:first|second|third) trimester",)
_IMMUNE = (
    r"chemo\w*|immuno ?suppress\w*|immuno ?compromised|weak(?:ened)? immune system"
    r"|(?:kidney|liver|heart|lung|organ|bone marrow|stem cell) transplant|transplant"
    r"|neutropeni\w*|on (?:high dose )?steroids|low white (?:blood )?(?:cell )?count",
)
_DEHYDRATION = (
    r"(?:not|hasnt|havent|hardly|barely) (?:been )?(?:peed|peeing|weeing|wee\w*|urinat\w*)"
    r"|(?:no|hasnt had a|has not had a|not had a|havent had a) wet (?:nappy|nappies|diapers?)"
    r"|no (?:wet )?nappies|dry nappies|no wet diapers|dry diapers|(?:very )?dark (?:urine|pee|wee)"
    r"|sunken (?:eyes|soft spot|fontanelle)|no tears|dry (?:mouth|lips|tongue)"
    r"|dizzy when (?:standing|stands?|i stand|getting up)|signs of dehydration|dehydrat\w*",
)
_KEEP_DOWN = (
    r"(?:cant|cannot|can not|unable to|not able to|couldnt|wont) (?:keep|hold) "
    r"(?:\w+ ){0,3}(?:down|in)",
    r"(?:throws?|throwing|brings?|bringing) up (?:everything|every drink|all fluids|any fluids)",
    r"(?:cant|cannot) (?:drink|eat) (?:anything|without (?:vomiting|being sick|throwing up))",
)
_INJURY = (
    r"twist\w*|sprain\w*|fell|fall|fallen|tripped|rolled|injur\w*|hurt|landed|kicked|knock\w*"
    r"|ankle|foot|knee|leg|wrist",
)
_NO_WEIGHT = (
    r"(?:cant|cannot|can not|unable to|not able to|couldnt) (?:put|bear|take|stand) "
    r"(?:any |my |his |her )?(?:weight|on it|on (?:my|his|her|the) \w+)",
    r"(?:cant|cannot|can not|unable to|not able to|couldnt) (?:walk|stand)(?! far)",
    r"(?:no|not) weight bearing|unable to weight bear|cannot weight bear",
)
_DEFORMITY = (
    r"(?:looks?|is|seems) (?:bent|deformed|misshapen|out of place|the wrong shape|crooked)"
    r"|bone (?:sticking|poking) out|heard a (?:crack|snap)|(?:might|may|could) be broken"
    r"|think (?:its|it is|i|he|she) (?:has )?broken",
)
_WEIGHT_OK = (
    r"(?:can|could|able to) (?:still )?(?:walk|put weight|bear weight|stand)"
    r"|walking (?:on it )?(?:ok|okay|fine|normally)|mild(?:ly)? (?:sore|swollen)|a bit sore",
)
_RASH = (r"rash\w*|spots|blotch\w*",)
_NON_BLANCHING = (
    r"(?:rash|spots) (?:that )?(?:doesnt|does not|dont|do not|wont|will not) fade"
    r"|(?:doesnt|does not|dont|do not) fade (?:under|with|when) (?:a )?glass"
    r"|glass test|non ?blanching|purple (?:rash|spots)|pin ?prick (?:rash|spots)",
)
_DROWSY_CHILD = (
    r"floppy|limp|(?:very |really )?hard to wake|wont wake|not waking|unusually sleepy"
    r"|very (?:sleepy|drowsy)|not responding|high pitched cry|weak cry|blue lips|mottled",
)
_STIFF_NECK = (r"stiff neck|neck is stiff|cant (?:bend|touch) (?:his |her |my )?(?:chin|neck)",)
_HEADACHE = (r"headache|head (?:hurts|aches|pain)",)

#: The rules beyond the emergency detector's, most urgent first (order does not decide).
TRIAGE_RULES: tuple[TriageRule, ...] = (
    # --- emergency: NICE NG143 red features, meningitis and sepsis signs, torsion
    TriageRule("non_blanching_rash", "emergency", (_NON_BLANCHING,),
               source="NHS meningitis (glass test); NICE NG143 red"),
    TriageRule("fever_with_drowsy_or_floppy_child", "emergency", (_FEVER, _DROWSY_CHILD),
               max_age=16, source="NICE NG143 red (no response, does not wake, floppy)"),
    TriageRule("fever_stiff_neck_headache", "emergency", (_FEVER, _STIFF_NECK),
               source="NHS meningitis"),
    TriageRule("testicular_pain_sudden", "emergency",
               ((r"(?:sudden\w*|severe|very bad|really bad) (?:\w+ )?(?:pain )?(?:in )?"
                 r"(?:(?:my|his|the) )?(?:testicles?|testis|balls?|scrotum)"
                 r"|(?:testicles?|testis|scrotum) (?:pain|hurts?) (?:came on )?sudden\w*",),),
               source="NHS testicle pain (torsion: go to A&E)"),
    # --- urgent: fever thresholds by age (NICE NG143 traffic light, NHS 111)
    TriageRule("fever_under_3_months", "urgent", (_FEVER,), max_age=0.25, min_celsius=38.0,
               source="NICE NG143: under 3 months, 38 C or more"),
    TriageRule("fever_3_to_6_months", "urgent", (_FEVER,), max_age=0.5, min_celsius=39.0,
               source="NICE NG143: 3 to 6 months, 39 C or more"),
    TriageRule("baby_under_3_months_fever_no_reading", "urgent",
               ((r"fever\w*|high temperature|feels (?:very )?hot|burning up",),), max_age=0.25,
               source="NHS 111: baby under 3 months with a high temperature"),
    TriageRule("fever_five_days_or_more", "urgent", (_FEVER,), min_hours=5 * 24,
               source="NICE NG143 amber; NHS: fever lasting 5 days or more"),
    TriageRule("fever_with_rash", "urgent", (_FEVER, _RASH),
               source="NHS fever in children/adults: a temperature with a rash"),
    TriageRule("very_high_fever", "urgent", (_FEVER,), min_celsius=40.0,
               source="NHS fever in adults: very high temperature"),
    TriageRule("child_fever_with_dehydration", "urgent", (_FEVER, _DEHYDRATION), max_age=16,
               source="NICE NG143 amber (reduced urine, dry mucous membranes)"),
    TriageRule("fever_pregnant", "urgent", (_PREGNANT, _FEVER), standing=1,
               source="NHS fever in adults: pregnant"),
    TriageRule("fever_immunosuppressed", "urgent", (_IMMUNE, _FEVER), standing=1,
               source="NICE CG151 neutropenic sepsis; NHS: weakened immune system"),
    # --- urgent: vomiting, diarrhoea, dehydration (NHS diarrhoea and vomiting)
    TriageRule("cannot_keep_fluids_down", "urgent", (_KEEP_DOWN,),
               source="NHS D&V: keep being sick and cannot keep fluid down"),
    TriageRule("vomiting_over_2_days", "urgent", (_VOMIT,), min_hours=48,
               source="NHS D&V: vomiting for more than 2 days"),
    TriageRule("diarrhoea_over_7_days", "urgent", (_DIARRHOEA,), min_hours=7 * 24,
               source="NHS D&V: diarrhoea for more than 7 days"),
    TriageRule("bloody_diarrhoea", "urgent",
               ((r"blood(?:y)? (?:in (?:my |his |her |the )?)?(?:diarr\w*|stools?|poo)"
                 r"|(?:diarr\w*|stools?|poo) (?:with|has|had|full of) blood"
                 r"|bleeding from (?:the|my|his|her) (?:bottom|back passage)",),),
               source="NHS D&V: bloody diarrhoea"),
    TriageRule("dehydration_signs", "urgent", (_DEHYDRATION,),
               source="NHS D&V and dehydration: signs of dehydration"),
    TriageRule("baby_vomiting_or_diarrhoea", "urgent",
               ((*_VOMIT, *_DIARRHOEA, r"(?:stopped|not|wont) (?:breast ?|bottle )?feed\w*"),),
               max_age=1.0, source="NHS D&V: a baby under 12 months"),
    # --- urgent: injuries (Ottawa rules, NHS sprains / broken bones / cuts / bites)
    TriageRule("cannot_bear_weight_after_injury", "urgent", (_INJURY, _NO_WEIGHT),
               source="Ottawa ankle and foot rules; NHS sprains: cannot put weight on it"),
    TriageRule("bone_tenderness_or_deformity", "urgent",
               (_INJURY, (*_DEFORMITY, r"tender\w* (?:on|over|at) (?:the )?(?:ankle )?bone"
                          r"|bone (?:is )?(?:very )?tender",)),
               source="Ottawa ankle rules; NHS broken bones"),
    TriageRule("deep_cut", "urgent",
               ((r"deep (?:cut|wound|gash)|gaping|(?:need|needs|might need) stitch\w*"
                 r"|wound (?:wont|will not) close|cut (?:is )?(?:wide )?open",),),
               source="NHS cuts and grazes: deep or gaping wounds"),
    TriageRule("animal_or_human_bite", "urgent",
               ((r"(?:dog|cat|animal|human|bat|fox) bit\w*|bitten by (?:a |an |the |our |my )?"
                 r"(?:dog|cat|animal|person|child|bat|fox)",),),
               source="NHS animal and human bites"),
    TriageRule("burn_blistering_or_large", "urgent",
               ((r"burn\w*|scald\w*",),
                (r"blister\w*|large|big|bigger than|white|charred|on (?:his|her|my) face"
                 r"|baby|toddler|child",)),
               source="NHS burns and scalds"),
    # --- urgent: pregnancy warning signs (NHS: call your midwife or maternity unit)
    TriageRule("pregnant_warning_signs", "urgent", standing=1, groups=
               (_PREGNANT,
                (r"bleed\w*|spotting|(?:severe|bad|sharp|constant) (?:\w+ )?(?:pain|cramp\w*)"
                 r"|(?:baby|babys|baby is) (?:is )?moving (?:less|much less)|(?:less|fewer|no)"
                 r" (?:baby )?movements|reduced (?:fetal |baby )?movements|not felt (?:the )?baby"
                 r"|waters? (?:has |have )?(?:broken|broke)|severe headache|blurred vision"
                 r"|(?:swollen|swelling) (?:face|hands|fingers)|itch\w* (?:hands|feet)",)),
               source="NHS pregnancy: when to call your midwife or maternity unit"),
    TriageRule("immunosuppressed_infection_signs", "urgent", standing=1, groups=
               (_IMMUNE, (r"shiver\w*|chills|rigors|feel(?:ing|s)? (?:very )?(?:unwell|ill)"
                          r"|sore throat|cough\w*|burning when|infect\w*",)),
               source="NICE CG151; NHS: infection with a weakened immune system"),
    # --- urgent: other same-day problems from NHS 111 pages
    TriageRule("painful_red_eye_or_eye_injury", "urgent",
               ((r"(?:red|painful|sore) eye (?:and|with) (?:\w+ )?(?:pain|vision|light)"
                 r"|eye (?:injury|is injured)|(?:something|chemical\w*|bleach) in (?:my|his|her)"
                 r" eye|(?:hit|poked|scratched) (?:in )?(?:my|his|her|the) eye"
                 r"|vision (?:is )?(?:blurr\w*|changed) (?:and|with) (?:\w+ )?pain",),),
               source="NHS 111: eye problems"),
    TriageRule("kidney_infection_signs", "urgent",
               ((r"burn\w* when (?:i |he |she )?(?:pee|wee|urinat\w*)|uti|urine infection"
                 r"|bladder infection|cystitis",),
                (r"fever\w*|high temperature|shiver\w*|(?:pain|ache) in (?:my |the |her |his )?"
                 r"(?:side|back|lower back)|(?:back|side|flank) pain|blood in (?:my |the )?"
                 r"(?:urine|pee|wee)",)),
               source="NHS kidney infection"),
    TriageRule("cannot_swallow_sore_throat", "urgent",
               ((r"sore throat|tonsil\w*|throat (?:is )?(?:very )?(?:sore|painful)",),
                (r"(?:cant|cannot|unable to|struggling to) (?:swallow|open (?:my|his|her) mouth)"
                 r"|drool\w*|(?:one|1) side (?:of (?:my|the) throat )?(?:much )?worse",)),
               source="NHS sore throat / quinsy"),
    TriageRule("severe_abdominal_pain", "urgent",
               ((r"(?:severe|very bad|really bad|terrible|unbearable|excruciating|intense)"
                 r" (?:\w+ )?(?:tummy|stomach|abdominal|belly|abdomen) (?:pain|ache|cramps?)"
                 r"|(?:pain|ache) in (?:my|his|her|the) (?:lower )?(?:right )?(?:tummy|stomach"
                 r"|abdomen|belly) (?:is )?(?:severe|very bad|getting worse|is getting worse)",),),
               source="NHS stomach ache: severe pain, see a GP urgently or call 111"),
    TriageRule("coughing_up_blood_small", "urgent",
               ((r"(?:coughing|coughed|cough) (?:up )?(?:some |a little |specks of |streaks of )?"
                 r"blood|blood in (?:my |his |her )?(?:phlegm|sputum|mucus)",),),
               source="NHS cough: coughing up blood"),
    TriageRule("child_breathing_fast_with_fever", "urgent",
               (_FEVER, (r"breathing (?:very )?fast|fast breathing|breathing (?:is )?noisy"
                         r"|wheez\w*|grunting",)),
               max_age=16, source="NICE NG143 amber (tachypnoea)"),
    # --- routine: NHS "see a GP if" (not urgent)
    TriageRule("cough_three_weeks", "routine", ((r"cough\w*",),), min_hours=21 * 24,
               source="NHS cough: see a GP after 3 weeks"),
    TriageRule("lump_or_swelling", "routine",
               ((r"\blump\w*|a swelling|swollen (?:gland|lymph)",),),
               source="NHS: lumps that do not go away"),
    TriageRule("unexplained_weight_loss", "routine",
               ((r"(?:losing|lost|lose) (?:a lot of |some )?weight(?! on purpose)"
                 r"|weight loss",),), source="NHS: unexplained weight loss"),
    TriageRule("mole_changing", "routine",
               ((r"mole (?:that )?(?:is |has )?(?:chang\w*|grow\w*|bigger|darker|itch\w*|bleed\w*)"
                 r"|(?:changing|new|growing|itchy) mole",),), source="NHS moles"),
    TriageRule("persistent_symptom_weeks", "routine",
               ((r"pain|ache\w*|tired\w*|exhaust\w*|heartburn|indigestion|rash|itch\w*"
                 r"|dizz\w*|headaches?|constipat\w*|numb\w*|tingl\w*|hair (?:loss|falling)"
                 r"|bloat\w*|snor\w*|insomnia|(?:cant|cannot) sleep|low mood|anxious|anxiety"
                 r"|palpitations|thirst\w*|peeing (?:a lot|more)"
                 r"|blood in (?:my )?(?:urine|pee)",),),
               min_hours=14 * 24, source="NHS: symptoms that last or keep coming back"),
    TriageRule("blood_in_urine", "routine",
               ((r"blood in (?:my |his |her |the )?(?:urine|pee|wee)"
                 r"|(?:red|pink) (?:urine|pee)",),),
               source="NHS blood in urine: see a GP"),
    TriageRule("medicine_review", "routine",
               ((r"(?:my|his|her) (?:medication|medicine|tablets|pills|dose|inhaler)"
                 r" (?:isnt|is not|arent|are not|doesnt|does not|dont|do not) (?:work|help)\w*",),),
               source="NHS: ask your GP or pharmacist to review your medicines"),
    # --- self-care: NHS "you can treat it yourself" pages
    TriageRule("minor_sprain_can_bear_weight", "self-care", (_INJURY, _WEIGHT_OK),
               source="NHS sprains and strains: rest, ice, compression, elevation"),
    TriageRule("common_cold", "self-care",
               ((r"(?:a |bad |head )?cold\b|runny nose|blocked nose|stuffy nose|sneez\w*"
                 r"|sniffl\w*|congest\w*|hay ?fever",),), max_hours=14 * 24,
               source="NHS common cold; hay fever"),
    TriageRule("short_vomiting_or_diarrhoea", "self-care", ((*_VOMIT, *_DIARRHOEA),),
               min_age=5, max_hours=48, source="NHS D&V: usually gets better in a few days"),
    TriageRule("mild_fever_short", "self-care", (_FEVER,), min_age=0.5, max_hours=72,
               source="NHS fever: fluids, rest, paracetamol or ibuprofen"),
    TriageRule("minor_skin_problem", "self-care",
               ((r"insect bite|(?:mosquito|midge|gnat|bee|wasp) (?:bite|sting)|sting\w*|stung"
                 r"|sunburn\w*"
                 r"|burnt|burned|burn"
                 r"|minor (?:cut|graze|burn)|graze\w*|small cut|paper cut|splinter",),),
               source="NHS insect bites and stings, sunburn, cuts and grazes"),
    TriageRule("mild_sore_throat_or_cough", "self-care",
               ((r"sore throat|tickly cough|dry cough|mild cough|hoarse\w*|lost (?:my )?voice",),),
               max_hours=7 * 24, source="NHS sore throat and cough"),
    TriageRule("mild_headache_or_hangover", "self-care",
               ((r"(?:mild|slight|tension) headache|hangover|hung ?over",),),
               max_hours=3 * 24, source="NHS headaches"),
)  # fmt: skip

#: What to do now, by level (the first paragraph of an answer at that level).
ADVICE: dict[str, str] = {
    "emergency": "Call your local emergency number now (911 in the US, 112 in Europe, 999 "
    "in the UK), or go to the nearest emergency department.",
    "urgent": "Get medical advice today: contact your doctor for a same-day appointment, go "
    "to an urgent care or urgent treatment centre, or call an out-of-hours line (NHS 111 in "
    "England). If it gets worse quickly, call your local emergency number.",
    "routine": "If it goes on, gets worse or worries you, book an ordinary appointment with "
    "your doctor.",
    "self-care": "This can usually be looked after at home (rest, fluids, and a pharmacist "
    "can advise on medicines); see a doctor if it does not get better or you feel worse.",
}

#: Words naming a child when no age is given (counted as 5 years old).
CHILD_WORDS = (
    r"son|daughter|child|kid|boy|girl|toddler|preschooler|little one|grandson|granddaughter"
)
