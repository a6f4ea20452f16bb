"""Words the demo site is made of: people's names, companies, departments and course topics.

Fixed lists, so a seed always picks the same names.
"""


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.strip().splitlines())


FIRST_NAMES = _words(
    """Amelia Noah Olivia Liam Isla Oliver Ava Elijah Mia Lucas Sofia Mateo Aisha Omar Yuki
    Hiroshi Priya Arjun Chloe Leo Fatima Ibrahim Zara Ethan Grace Samuel Lena Jonas Maya Felix
    Nora Hugo Ines Tomas Clara Diego Elena Marco Sara David Hannah Adam Leila Kofi Amara Chen
    Mei Ravi Anika Oscar"""
)
LAST_NAMES = _words(
    """Smith Garcia Müller Rossi Dubois Kowalski Nakamura Patel Okafor Johansson Silva Novak
    O'Brien Nguyen Kim Haddad Fischer Moreau Jensen Costa Ivanova Santos Schmidt Wright Khan
    Lopez Brown Tanaka Mensah Larsen Bianchi Walker Andersen Fernandez Hughes Popescu Yilmaz
    Murphy Chen Singh Martin Clarke Weber Ali Nowak Rahman Evans Sato Petrov Keller"""
)
# (city, ISO country code)
CITIES = tuple(
    tuple(line.split(","))
    for line in _lines(
        """
        London,GB
        Manchester,GB
        Dublin,IE
        Berlin,DE
        Munich,DE
        Paris,FR
        Madrid,ES
        Lisbon,PT
        Rome,IT
        Warsaw,PL
        Stockholm,SE
        Toronto,CA
        New York,US
        Austin,US
        Sydney,AU
        Singapore,SG
        Nairobi,KE
        Mumbai,IN
        Tokyo,JP
        """
    )
)
# '99' is Moodle's "server timezone"; most users keep it.
TIMEZONES = _words("99 99 99 99 Europe/London Europe/Berlin America/New_York Asia/Tokyo")
COMPANY_WORDS = _words(
    """Northwind Bluewater Redwood Summit Evergreen Ironbridge Silverline Harbor Granite
    Lakeside Brightpath Oakridge Cobalt Meridian Pioneer Crescent Falcon Horizon Juniper
    Keystone Lumen Maple Nimbus Orion Pinnacle"""
)
COMPANY_KINDS = _words("Logistics Health Retail Energy Finance Foods Systems Labs Consulting")
DEPARTMENTS = _words("Sales Operations Support Engineering Finance People")
COURSE_TOPICS = _lines(
    """
    Data Protection
    Fire Safety
    Manual Handling
    Information Security
    Anti-Bribery
    Leadership
    Customer Service
    Project Management
    First Aid
    Equality and Diversity
    Health and Safety
    Cyber Awareness
    Negotiation
    Time Management
    Spreadsheet Skills
    Food Hygiene
    Safeguarding
    Onboarding
    Sales Techniques
    Agile Basics
    """
)
COURSE_LEVELS = _words("Essentials Foundations Advanced Refresher Practitioner")
SUBJECT_CATEGORIES = _lines(
    """
    Compliance
    Professional Skills
    Technology
    Onboarding
    """
)
