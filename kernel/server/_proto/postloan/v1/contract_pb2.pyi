import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActionChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_CHANNEL_UNSPECIFIED: _ClassVar[ActionChannel]
    ACTION_CHANNEL_SMS: _ClassVar[ActionChannel]
    ACTION_CHANNEL_VOICE_BOT: _ClassVar[ActionChannel]
    ACTION_CHANNEL_PHONE: _ClassVar[ActionChannel]
    ACTION_CHANNEL_FIELD_VISIT: _ClassVar[ActionChannel]
    ACTION_CHANNEL_LEGAL_REVIEW: _ClassVar[ActionChannel]
    ACTION_CHANNEL_THIRD_PARTY_CONTACT: _ClassVar[ActionChannel]
    ACTION_CHANNEL_REPOSSESSION: _ClassVar[ActionChannel]
    ACTION_CHANNEL_DISPOSAL: _ClassVar[ActionChannel]

class ComplianceOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLIANCE_OUTCOME_UNSPECIFIED: _ClassVar[ComplianceOutcome]
    COMPLIANCE_OUTCOME_KEEP: _ClassVar[ComplianceOutcome]
    COMPLIANCE_OUTCOME_DEFER: _ClassVar[ComplianceOutcome]
    COMPLIANCE_OUTCOME_BLOCK: _ClassVar[ComplianceOutcome]

class ConditionGrade(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_GRADE_UNSPECIFIED: _ClassVar[ConditionGrade]
    CONDITION_GRADE_A: _ClassVar[ConditionGrade]
    CONDITION_GRADE_B: _ClassVar[ConditionGrade]
    CONDITION_GRADE_C: _ClassVar[ConditionGrade]
    CONDITION_GRADE_D: _ClassVar[ConditionGrade]
    CONDITION_GRADE_E: _ClassVar[ConditionGrade]

class ContactChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTACT_CHANNEL_UNSPECIFIED: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_PHONE: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_SMS: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_VOICE_BOT: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_FIELD_VISIT: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_EMAIL: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_LETTER: _ClassVar[ContactChannel]
    CONTACT_CHANNEL_THIRD_PARTY: _ClassVar[ContactChannel]

class ContactOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTACT_OUTCOME_UNSPECIFIED: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_NO_ANSWER: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_BUSY: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_WRONG_PARTY: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_RIGHT_PARTY: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_VOICEMAIL: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_DELIVERED: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_FAILED: _ClassVar[ContactOutcome]
    CONTACT_OUTCOME_UNREPORTED: _ClassVar[ContactOutcome]

class Country(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUNTRY_UNSPECIFIED: _ClassVar[Country]
    COUNTRY_CN: _ClassVar[Country]
    COUNTRY_US: _ClassVar[Country]

class Currency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CURRENCY_UNSPECIFIED: _ClassVar[Currency]
    CURRENCY_CNY: _ClassVar[Currency]
    CURRENCY_USD: _ClassVar[Currency]

class EmploymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMPLOYMENT_STATUS_UNSPECIFIED: _ClassVar[EmploymentStatus]
    EMPLOYMENT_STATUS_EMPLOYED: _ClassVar[EmploymentStatus]
    EMPLOYMENT_STATUS_SELF_EMPLOYED: _ClassVar[EmploymentStatus]
    EMPLOYMENT_STATUS_UNEMPLOYED: _ClassVar[EmploymentStatus]
    EMPLOYMENT_STATUS_RETIRED: _ClassVar[EmploymentStatus]
    EMPLOYMENT_STATUS_STUDENT: _ClassVar[EmploymentStatus]

class EnergyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENERGY_TYPE_UNSPECIFIED: _ClassVar[EnergyType]
    ENERGY_TYPE_ICE: _ClassVar[EnergyType]
    ENERGY_TYPE_HEV: _ClassVar[EnergyType]
    ENERGY_TYPE_PHEV: _ClassVar[EnergyType]
    ENERGY_TYPE_BEV: _ClassVar[EnergyType]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_PAYMENT: _ClassVar[EventKind]
    EVENT_KIND_CONTACT_ATTEMPT: _ClassVar[EventKind]
    EVENT_KIND_PROMISE_TO_PAY: _ClassVar[EventKind]
    EVENT_KIND_DISPUTE_OPENED: _ClassVar[EventKind]
    EVENT_KIND_DISPUTE_RESOLVED: _ClassVar[EventKind]
    EVENT_KIND_COMPLAINT_OPENED: _ClassVar[EventKind]
    EVENT_KIND_COMPLAINT_CLOSED: _ClassVar[EventKind]
    EVENT_KIND_CEASE_REQUESTED: _ClassVar[EventKind]
    EVENT_KIND_ATTORNEY_REPRESENTED: _ClassVar[EventKind]
    EVENT_KIND_BANKRUPTCY_FILED: _ClassVar[EventKind]
    EVENT_KIND_BANKRUPTCY_CLOSED: _ClassVar[EventKind]
    EVENT_KIND_DECEASED: _ClassVar[EventKind]
    EVENT_KIND_CONSENT_GRANTED: _ClassVar[EventKind]
    EVENT_KIND_CONSENT_REVOKED: _ClassVar[EventKind]
    EVENT_KIND_OPT_OUT: _ClassVar[EventKind]
    EVENT_KIND_HARDSHIP_DECLARED: _ClassVar[EventKind]
    EVENT_KIND_HARDSHIP_ENDED: _ClassVar[EventKind]
    EVENT_KIND_GPS_PING: _ClassVar[EventKind]
    EVENT_KIND_GPS_TAMPER: _ClassVar[EventKind]
    EVENT_KIND_GEOFENCE_EXIT: _ClassVar[EventKind]
    EVENT_KIND_INSURANCE_RENEWED: _ClassVar[EventKind]
    EVENT_KIND_VIOLATION: _ClassVar[EventKind]
    EVENT_KIND_DEMAND_NOTICE_SENT: _ClassVar[EventKind]
    EVENT_KIND_REPOSSESSION_ORDERED: _ClassVar[EventKind]
    EVENT_KIND_REPOSSESSED: _ClassVar[EventKind]
    EVENT_KIND_DISPOSAL_NOTICE_SENT: _ClassVar[EventKind]
    EVENT_KIND_REDEEMED: _ClassVar[EventKind]
    EVENT_KIND_VEHICLE_SOLD: _ClassVar[EventKind]
    EVENT_KIND_COMPLAINT_EXTENDED: _ClassVar[EventKind]
    EVENT_KIND_EMPLOYER_PROHIBITS_CONTACT: _ClassVar[EventKind]
    EVENT_KIND_WORK_HOURS_INCONVENIENT: _ClassVar[EventKind]
    EVENT_KIND_MILITARY_SERVICE_STARTED: _ClassVar[EventKind]
    EVENT_KIND_MILITARY_SERVICE_ENDED: _ClassVar[EventKind]
    EVENT_KIND_COURT_ORDER_GRANTED: _ClassVar[EventKind]
    EVENT_KIND_ARBITRAL_AWARD_GRANTED: _ClassVar[EventKind]
    EVENT_KIND_SURRENDER_AGREED: _ClassVar[EventKind]
    EVENT_KIND_CURE_NOTICE_SENT: _ClassVar[EventKind]
    EVENT_KIND_GPS_CONSENT_GRANTED: _ClassVar[EventKind]
    EVENT_KIND_GPS_CONSENT_REVOKED: _ClassVar[EventKind]
    EVENT_KIND_MORTGAGE_REGISTERED: _ClassVar[EventKind]
    EVENT_KIND_CONTRACT_NOTARISED: _ClassVar[EventKind]
    EVENT_KIND_ARBITRATION_AGREED: _ClassVar[EventKind]

class GpsStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GPS_STATUS_UNSPECIFIED: _ClassVar[GpsStatus]
    GPS_STATUS_ONLINE: _ClassVar[GpsStatus]
    GPS_STATUS_OFFLINE: _ClassVar[GpsStatus]
    GPS_STATUS_TAMPERED: _ClassVar[GpsStatus]
    GPS_STATUS_NO_DEVICE: _ClassVar[GpsStatus]

class Language(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANGUAGE_UNSPECIFIED: _ClassVar[Language]
    LANGUAGE_ZH: _ClassVar[Language]
    LANGUAGE_EN: _ClassVar[Language]

class OverdueReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERDUE_REASON_UNSPECIFIED: _ClassVar[OverdueReason]
    OVERDUE_REASON_NONE: _ClassVar[OverdueReason]
    OVERDUE_REASON_UNKNOWN: _ClassVar[OverdueReason]
    OVERDUE_REASON_INCOME_LOSS: _ClassVar[OverdueReason]
    OVERDUE_REASON_ILLNESS: _ClassVar[OverdueReason]
    OVERDUE_REASON_BUSINESS_FAILURE: _ClassVar[OverdueReason]
    OVERDUE_REASON_DISPUTE: _ClassVar[OverdueReason]
    OVERDUE_REASON_FORGOT: _ClassVar[OverdueReason]
    OVERDUE_REASON_WILFUL_REFUSAL: _ClassVar[OverdueReason]
    OVERDUE_REASON_FRAUD_SUSPECTED: _ClassVar[OverdueReason]

class Product(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_UNSPECIFIED: _ClassVar[Product]
    PRODUCT_NEW_CAR_LOAN: _ClassVar[Product]
    PRODUCT_USED_CAR_LOAN: _ClassVar[Product]
    PRODUCT_FINANCE_LEASE: _ClassVar[Product]

class RepaymentMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPAYMENT_METHOD_UNSPECIFIED: _ClassVar[RepaymentMethod]
    REPAYMENT_METHOD_EQUAL_INSTALLMENT: _ClassVar[RepaymentMethod]
    REPAYMENT_METHOD_EQUAL_PRINCIPAL: _ClassVar[RepaymentMethod]
ACTION_CHANNEL_UNSPECIFIED: ActionChannel
ACTION_CHANNEL_SMS: ActionChannel
ACTION_CHANNEL_VOICE_BOT: ActionChannel
ACTION_CHANNEL_PHONE: ActionChannel
ACTION_CHANNEL_FIELD_VISIT: ActionChannel
ACTION_CHANNEL_LEGAL_REVIEW: ActionChannel
ACTION_CHANNEL_THIRD_PARTY_CONTACT: ActionChannel
ACTION_CHANNEL_REPOSSESSION: ActionChannel
ACTION_CHANNEL_DISPOSAL: ActionChannel
COMPLIANCE_OUTCOME_UNSPECIFIED: ComplianceOutcome
COMPLIANCE_OUTCOME_KEEP: ComplianceOutcome
COMPLIANCE_OUTCOME_DEFER: ComplianceOutcome
COMPLIANCE_OUTCOME_BLOCK: ComplianceOutcome
CONDITION_GRADE_UNSPECIFIED: ConditionGrade
CONDITION_GRADE_A: ConditionGrade
CONDITION_GRADE_B: ConditionGrade
CONDITION_GRADE_C: ConditionGrade
CONDITION_GRADE_D: ConditionGrade
CONDITION_GRADE_E: ConditionGrade
CONTACT_CHANNEL_UNSPECIFIED: ContactChannel
CONTACT_CHANNEL_PHONE: ContactChannel
CONTACT_CHANNEL_SMS: ContactChannel
CONTACT_CHANNEL_VOICE_BOT: ContactChannel
CONTACT_CHANNEL_FIELD_VISIT: ContactChannel
CONTACT_CHANNEL_EMAIL: ContactChannel
CONTACT_CHANNEL_LETTER: ContactChannel
CONTACT_CHANNEL_THIRD_PARTY: ContactChannel
CONTACT_OUTCOME_UNSPECIFIED: ContactOutcome
CONTACT_OUTCOME_NO_ANSWER: ContactOutcome
CONTACT_OUTCOME_BUSY: ContactOutcome
CONTACT_OUTCOME_WRONG_PARTY: ContactOutcome
CONTACT_OUTCOME_RIGHT_PARTY: ContactOutcome
CONTACT_OUTCOME_VOICEMAIL: ContactOutcome
CONTACT_OUTCOME_DELIVERED: ContactOutcome
CONTACT_OUTCOME_FAILED: ContactOutcome
CONTACT_OUTCOME_UNREPORTED: ContactOutcome
COUNTRY_UNSPECIFIED: Country
COUNTRY_CN: Country
COUNTRY_US: Country
CURRENCY_UNSPECIFIED: Currency
CURRENCY_CNY: Currency
CURRENCY_USD: Currency
EMPLOYMENT_STATUS_UNSPECIFIED: EmploymentStatus
EMPLOYMENT_STATUS_EMPLOYED: EmploymentStatus
EMPLOYMENT_STATUS_SELF_EMPLOYED: EmploymentStatus
EMPLOYMENT_STATUS_UNEMPLOYED: EmploymentStatus
EMPLOYMENT_STATUS_RETIRED: EmploymentStatus
EMPLOYMENT_STATUS_STUDENT: EmploymentStatus
ENERGY_TYPE_UNSPECIFIED: EnergyType
ENERGY_TYPE_ICE: EnergyType
ENERGY_TYPE_HEV: EnergyType
ENERGY_TYPE_PHEV: EnergyType
ENERGY_TYPE_BEV: EnergyType
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_PAYMENT: EventKind
EVENT_KIND_CONTACT_ATTEMPT: EventKind
EVENT_KIND_PROMISE_TO_PAY: EventKind
EVENT_KIND_DISPUTE_OPENED: EventKind
EVENT_KIND_DISPUTE_RESOLVED: EventKind
EVENT_KIND_COMPLAINT_OPENED: EventKind
EVENT_KIND_COMPLAINT_CLOSED: EventKind
EVENT_KIND_CEASE_REQUESTED: EventKind
EVENT_KIND_ATTORNEY_REPRESENTED: EventKind
EVENT_KIND_BANKRUPTCY_FILED: EventKind
EVENT_KIND_BANKRUPTCY_CLOSED: EventKind
EVENT_KIND_DECEASED: EventKind
EVENT_KIND_CONSENT_GRANTED: EventKind
EVENT_KIND_CONSENT_REVOKED: EventKind
EVENT_KIND_OPT_OUT: EventKind
EVENT_KIND_HARDSHIP_DECLARED: EventKind
EVENT_KIND_HARDSHIP_ENDED: EventKind
EVENT_KIND_GPS_PING: EventKind
EVENT_KIND_GPS_TAMPER: EventKind
EVENT_KIND_GEOFENCE_EXIT: EventKind
EVENT_KIND_INSURANCE_RENEWED: EventKind
EVENT_KIND_VIOLATION: EventKind
EVENT_KIND_DEMAND_NOTICE_SENT: EventKind
EVENT_KIND_REPOSSESSION_ORDERED: EventKind
EVENT_KIND_REPOSSESSED: EventKind
EVENT_KIND_DISPOSAL_NOTICE_SENT: EventKind
EVENT_KIND_REDEEMED: EventKind
EVENT_KIND_VEHICLE_SOLD: EventKind
EVENT_KIND_COMPLAINT_EXTENDED: EventKind
EVENT_KIND_EMPLOYER_PROHIBITS_CONTACT: EventKind
EVENT_KIND_WORK_HOURS_INCONVENIENT: EventKind
EVENT_KIND_MILITARY_SERVICE_STARTED: EventKind
EVENT_KIND_MILITARY_SERVICE_ENDED: EventKind
EVENT_KIND_COURT_ORDER_GRANTED: EventKind
EVENT_KIND_ARBITRAL_AWARD_GRANTED: EventKind
EVENT_KIND_SURRENDER_AGREED: EventKind
EVENT_KIND_CURE_NOTICE_SENT: EventKind
EVENT_KIND_GPS_CONSENT_GRANTED: EventKind
EVENT_KIND_GPS_CONSENT_REVOKED: EventKind
EVENT_KIND_MORTGAGE_REGISTERED: EventKind
EVENT_KIND_CONTRACT_NOTARISED: EventKind
EVENT_KIND_ARBITRATION_AGREED: EventKind
GPS_STATUS_UNSPECIFIED: GpsStatus
GPS_STATUS_ONLINE: GpsStatus
GPS_STATUS_OFFLINE: GpsStatus
GPS_STATUS_TAMPERED: GpsStatus
GPS_STATUS_NO_DEVICE: GpsStatus
LANGUAGE_UNSPECIFIED: Language
LANGUAGE_ZH: Language
LANGUAGE_EN: Language
OVERDUE_REASON_UNSPECIFIED: OverdueReason
OVERDUE_REASON_NONE: OverdueReason
OVERDUE_REASON_UNKNOWN: OverdueReason
OVERDUE_REASON_INCOME_LOSS: OverdueReason
OVERDUE_REASON_ILLNESS: OverdueReason
OVERDUE_REASON_BUSINESS_FAILURE: OverdueReason
OVERDUE_REASON_DISPUTE: OverdueReason
OVERDUE_REASON_FORGOT: OverdueReason
OVERDUE_REASON_WILFUL_REFUSAL: OverdueReason
OVERDUE_REASON_FRAUD_SUSPECTED: OverdueReason
PRODUCT_UNSPECIFIED: Product
PRODUCT_NEW_CAR_LOAN: Product
PRODUCT_USED_CAR_LOAN: Product
PRODUCT_FINANCE_LEASE: Product
REPAYMENT_METHOD_UNSPECIFIED: RepaymentMethod
REPAYMENT_METHOD_EQUAL_INSTALLMENT: RepaymentMethod
REPAYMENT_METHOD_EQUAL_PRINCIPAL: RepaymentMethod

class Account(_message.Message):
    __slots__ = ("account_id", "customer_id", "vin", "product", "contract_date", "first_due_date", "term_months", "principal", "annual_rate", "repayment_method", "installment_amount", "installments_due", "installments_paid", "outstanding_principal", "next_due_date", "dpd", "overdue_installments", "overdue_principal", "overdue_interest", "overdue_amount", "penalty_rate_daily", "penalty_interest", "dpd_30d_ago", "max_dpd_12m", "times_overdue_12m", "on_time_ratio_12m", "last_payment_date", "last_payment_amount", "promises_made_90d", "promises_kept_90d", "promises_broken_90d", "promises_broken_30d", "promise_date", "reported_overdue_reason", "litigation_clause", "contact_records_kept", "demand_notices_sent", "repossessed", "currency", "name", "id_number", "phone", "address", "age", "country", "region", "time_zone", "bureau_score", "credit_history_months", "credit_inquiries_6m", "delinquencies_24m", "monthly_income", "total_debt", "debt_to_income", "card_utilization", "monthly_spending", "spending_change_3m", "employment_status", "employment_years", "phone_valid", "has_third_party_contact", "consent_automated_contact", "contact_opt_out", "connected_calls_today", "call_attempts_today", "consecutive_failed_attempts", "calls_7d", "sms_today", "last_conversation_at", "open_complaints", "plate_number", "brand", "model", "model_year", "energy_type", "mileage_km", "condition_grade", "purchase_price", "insurance_expiry_date", "gps_status", "gps_offline_hours", "gps_last_ping_at", "gps_lat", "gps_lon", "home_geofence_km", "km_from_home", "geofence_exits_30d", "violations_90d")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    VIN_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_DATE_FIELD_NUMBER: _ClassVar[int]
    FIRST_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    TERM_MONTHS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ANNUAL_RATE_FIELD_NUMBER: _ClassVar[int]
    REPAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    INSTALLMENT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INSTALLMENTS_DUE_FIELD_NUMBER: _ClassVar[int]
    INSTALLMENTS_PAID_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    DPD_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_INSTALLMENTS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_INTEREST_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PENALTY_RATE_DAILY_FIELD_NUMBER: _ClassVar[int]
    PENALTY_INTEREST_FIELD_NUMBER: _ClassVar[int]
    DPD_30D_AGO_FIELD_NUMBER: _ClassVar[int]
    MAX_DPD_12M_FIELD_NUMBER: _ClassVar[int]
    TIMES_OVERDUE_12M_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_RATIO_12M_FIELD_NUMBER: _ClassVar[int]
    LAST_PAYMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    LAST_PAYMENT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PROMISES_MADE_90D_FIELD_NUMBER: _ClassVar[int]
    PROMISES_KEPT_90D_FIELD_NUMBER: _ClassVar[int]
    PROMISES_BROKEN_90D_FIELD_NUMBER: _ClassVar[int]
    PROMISES_BROKEN_30D_FIELD_NUMBER: _ClassVar[int]
    PROMISE_DATE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_OVERDUE_REASON_FIELD_NUMBER: _ClassVar[int]
    LITIGATION_CLAUSE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_RECORDS_KEPT_FIELD_NUMBER: _ClassVar[int]
    DEMAND_NOTICES_SENT_FIELD_NUMBER: _ClassVar[int]
    REPOSSESSED_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    BUREAU_SCORE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_HISTORY_MONTHS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_INQUIRIES_6M_FIELD_NUMBER: _ClassVar[int]
    DELINQUENCIES_24M_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_INCOME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DEBT_FIELD_NUMBER: _ClassVar[int]
    DEBT_TO_INCOME_FIELD_NUMBER: _ClassVar[int]
    CARD_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_SPENDING_FIELD_NUMBER: _ClassVar[int]
    SPENDING_CHANGE_3M_FIELD_NUMBER: _ClassVar[int]
    EMPLOYMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    EMPLOYMENT_YEARS_FIELD_NUMBER: _ClassVar[int]
    PHONE_VALID_FIELD_NUMBER: _ClassVar[int]
    HAS_THIRD_PARTY_CONTACT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_AUTOMATED_CONTACT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_OPT_OUT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_CALLS_TODAY_FIELD_NUMBER: _ClassVar[int]
    CALL_ATTEMPTS_TODAY_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CALLS_7D_FIELD_NUMBER: _ClassVar[int]
    SMS_TODAY_FIELD_NUMBER: _ClassVar[int]
    LAST_CONVERSATION_AT_FIELD_NUMBER: _ClassVar[int]
    OPEN_COMPLAINTS_FIELD_NUMBER: _ClassVar[int]
    PLATE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_YEAR_FIELD_NUMBER: _ClassVar[int]
    ENERGY_TYPE_FIELD_NUMBER: _ClassVar[int]
    MILEAGE_KM_FIELD_NUMBER: _ClassVar[int]
    CONDITION_GRADE_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_PRICE_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_EXPIRY_DATE_FIELD_NUMBER: _ClassVar[int]
    GPS_STATUS_FIELD_NUMBER: _ClassVar[int]
    GPS_OFFLINE_HOURS_FIELD_NUMBER: _ClassVar[int]
    GPS_LAST_PING_AT_FIELD_NUMBER: _ClassVar[int]
    GPS_LAT_FIELD_NUMBER: _ClassVar[int]
    GPS_LON_FIELD_NUMBER: _ClassVar[int]
    HOME_GEOFENCE_KM_FIELD_NUMBER: _ClassVar[int]
    KM_FROM_HOME_FIELD_NUMBER: _ClassVar[int]
    GEOFENCE_EXITS_30D_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_90D_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    customer_id: str
    vin: str
    product: Product
    contract_date: _date_pb2.Date
    first_due_date: _date_pb2.Date
    term_months: int
    principal: float
    annual_rate: float
    repayment_method: RepaymentMethod
    installment_amount: float
    installments_due: int
    installments_paid: int
    outstanding_principal: float
    next_due_date: _date_pb2.Date
    dpd: int
    overdue_installments: int
    overdue_principal: float
    overdue_interest: float
    overdue_amount: float
    penalty_rate_daily: float
    penalty_interest: float
    dpd_30d_ago: int
    max_dpd_12m: int
    times_overdue_12m: int
    on_time_ratio_12m: float
    last_payment_date: _date_pb2.Date
    last_payment_amount: float
    promises_made_90d: int
    promises_kept_90d: int
    promises_broken_90d: int
    promises_broken_30d: int
    promise_date: _date_pb2.Date
    reported_overdue_reason: OverdueReason
    litigation_clause: bool
    contact_records_kept: bool
    demand_notices_sent: int
    repossessed: bool
    currency: Currency
    name: str
    id_number: str
    phone: str
    address: str
    age: int
    country: Country
    region: str
    time_zone: str
    bureau_score: int
    credit_history_months: int
    credit_inquiries_6m: int
    delinquencies_24m: int
    monthly_income: float
    total_debt: float
    debt_to_income: float
    card_utilization: float
    monthly_spending: float
    spending_change_3m: float
    employment_status: EmploymentStatus
    employment_years: float
    phone_valid: bool
    has_third_party_contact: bool
    consent_automated_contact: bool
    contact_opt_out: bool
    connected_calls_today: int
    call_attempts_today: int
    consecutive_failed_attempts: int
    calls_7d: int
    sms_today: int
    last_conversation_at: _timestamp_pb2.Timestamp
    open_complaints: int
    plate_number: str
    brand: str
    model: str
    model_year: int
    energy_type: EnergyType
    mileage_km: float
    condition_grade: ConditionGrade
    purchase_price: float
    insurance_expiry_date: _date_pb2.Date
    gps_status: GpsStatus
    gps_offline_hours: float
    gps_last_ping_at: _timestamp_pb2.Timestamp
    gps_lat: float
    gps_lon: float
    home_geofence_km: float
    km_from_home: float
    geofence_exits_30d: int
    violations_90d: int
    def __init__(self, account_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., vin: _Optional[str] = ..., product: _Optional[_Union[Product, str]] = ..., contract_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., first_due_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., term_months: _Optional[int] = ..., principal: _Optional[float] = ..., annual_rate: _Optional[float] = ..., repayment_method: _Optional[_Union[RepaymentMethod, str]] = ..., installment_amount: _Optional[float] = ..., installments_due: _Optional[int] = ..., installments_paid: _Optional[int] = ..., outstanding_principal: _Optional[float] = ..., next_due_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., dpd: _Optional[int] = ..., overdue_installments: _Optional[int] = ..., overdue_principal: _Optional[float] = ..., overdue_interest: _Optional[float] = ..., overdue_amount: _Optional[float] = ..., penalty_rate_daily: _Optional[float] = ..., penalty_interest: _Optional[float] = ..., dpd_30d_ago: _Optional[int] = ..., max_dpd_12m: _Optional[int] = ..., times_overdue_12m: _Optional[int] = ..., on_time_ratio_12m: _Optional[float] = ..., last_payment_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., last_payment_amount: _Optional[float] = ..., promises_made_90d: _Optional[int] = ..., promises_kept_90d: _Optional[int] = ..., promises_broken_90d: _Optional[int] = ..., promises_broken_30d: _Optional[int] = ..., promise_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., reported_overdue_reason: _Optional[_Union[OverdueReason, str]] = ..., litigation_clause: _Optional[bool] = ..., contact_records_kept: _Optional[bool] = ..., demand_notices_sent: _Optional[int] = ..., repossessed: _Optional[bool] = ..., currency: _Optional[_Union[Currency, str]] = ..., name: _Optional[str] = ..., id_number: _Optional[str] = ..., phone: _Optional[str] = ..., address: _Optional[str] = ..., age: _Optional[int] = ..., country: _Optional[_Union[Country, str]] = ..., region: _Optional[str] = ..., time_zone: _Optional[str] = ..., bureau_score: _Optional[int] = ..., credit_history_months: _Optional[int] = ..., credit_inquiries_6m: _Optional[int] = ..., delinquencies_24m: _Optional[int] = ..., monthly_income: _Optional[float] = ..., total_debt: _Optional[float] = ..., debt_to_income: _Optional[float] = ..., card_utilization: _Optional[float] = ..., monthly_spending: _Optional[float] = ..., spending_change_3m: _Optional[float] = ..., employment_status: _Optional[_Union[EmploymentStatus, str]] = ..., employment_years: _Optional[float] = ..., phone_valid: _Optional[bool] = ..., has_third_party_contact: _Optional[bool] = ..., consent_automated_contact: _Optional[bool] = ..., contact_opt_out: _Optional[bool] = ..., connected_calls_today: _Optional[int] = ..., call_attempts_today: _Optional[int] = ..., consecutive_failed_attempts: _Optional[int] = ..., calls_7d: _Optional[int] = ..., sms_today: _Optional[int] = ..., last_conversation_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open_complaints: _Optional[int] = ..., plate_number: _Optional[str] = ..., brand: _Optional[str] = ..., model: _Optional[str] = ..., model_year: _Optional[int] = ..., energy_type: _Optional[_Union[EnergyType, str]] = ..., mileage_km: _Optional[float] = ..., condition_grade: _Optional[_Union[ConditionGrade, str]] = ..., purchase_price: _Optional[float] = ..., insurance_expiry_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., gps_status: _Optional[_Union[GpsStatus, str]] = ..., gps_offline_hours: _Optional[float] = ..., gps_last_ping_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gps_lat: _Optional[float] = ..., gps_lon: _Optional[float] = ..., home_geofence_km: _Optional[float] = ..., km_from_home: _Optional[float] = ..., geofence_exits_30d: _Optional[int] = ..., violations_90d: _Optional[int] = ...) -> None: ...

class Vehicle(_message.Message):
    __slots__ = ("vin", "plate_number", "brand", "model", "model_year", "energy_type", "mileage_km", "condition_grade", "purchase_price", "insurance_expiry_date", "gps_status", "gps_offline_hours", "gps_last_ping_at", "gps_lat", "gps_lon", "home_geofence_km", "km_from_home", "geofence_exits_30d", "violations_90d")
    VIN_FIELD_NUMBER: _ClassVar[int]
    PLATE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_YEAR_FIELD_NUMBER: _ClassVar[int]
    ENERGY_TYPE_FIELD_NUMBER: _ClassVar[int]
    MILEAGE_KM_FIELD_NUMBER: _ClassVar[int]
    CONDITION_GRADE_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_PRICE_FIELD_NUMBER: _ClassVar[int]
    INSURANCE_EXPIRY_DATE_FIELD_NUMBER: _ClassVar[int]
    GPS_STATUS_FIELD_NUMBER: _ClassVar[int]
    GPS_OFFLINE_HOURS_FIELD_NUMBER: _ClassVar[int]
    GPS_LAST_PING_AT_FIELD_NUMBER: _ClassVar[int]
    GPS_LAT_FIELD_NUMBER: _ClassVar[int]
    GPS_LON_FIELD_NUMBER: _ClassVar[int]
    HOME_GEOFENCE_KM_FIELD_NUMBER: _ClassVar[int]
    KM_FROM_HOME_FIELD_NUMBER: _ClassVar[int]
    GEOFENCE_EXITS_30D_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_90D_FIELD_NUMBER: _ClassVar[int]
    vin: str
    plate_number: str
    brand: str
    model: str
    model_year: int
    energy_type: EnergyType
    mileage_km: float
    condition_grade: ConditionGrade
    purchase_price: float
    insurance_expiry_date: _date_pb2.Date
    gps_status: GpsStatus
    gps_offline_hours: float
    gps_last_ping_at: _timestamp_pb2.Timestamp
    gps_lat: float
    gps_lon: float
    home_geofence_km: float
    km_from_home: float
    geofence_exits_30d: int
    violations_90d: int
    def __init__(self, vin: _Optional[str] = ..., plate_number: _Optional[str] = ..., brand: _Optional[str] = ..., model: _Optional[str] = ..., model_year: _Optional[int] = ..., energy_type: _Optional[_Union[EnergyType, str]] = ..., mileage_km: _Optional[float] = ..., condition_grade: _Optional[_Union[ConditionGrade, str]] = ..., purchase_price: _Optional[float] = ..., insurance_expiry_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., gps_status: _Optional[_Union[GpsStatus, str]] = ..., gps_offline_hours: _Optional[float] = ..., gps_last_ping_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gps_lat: _Optional[float] = ..., gps_lon: _Optional[float] = ..., home_geofence_km: _Optional[float] = ..., km_from_home: _Optional[float] = ..., geofence_exits_30d: _Optional[int] = ..., violations_90d: _Optional[int] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("account_id", "action", "priority", "earliest_at", "script_id", "language", "script", "outcome", "reason_code", "next_allowed_at", "policy")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_AT_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ALLOWED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    action: ActionChannel
    priority: float
    earliest_at: _timestamp_pb2.Timestamp
    script_id: str
    language: Language
    script: str
    outcome: ComplianceOutcome
    reason_code: str
    next_allowed_at: _timestamp_pb2.Timestamp
    policy: str
    def __init__(self, account_id: _Optional[str] = ..., action: _Optional[_Union[ActionChannel, str]] = ..., priority: _Optional[float] = ..., earliest_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., script_id: _Optional[str] = ..., language: _Optional[_Union[Language, str]] = ..., script: _Optional[str] = ..., outcome: _Optional[_Union[ComplianceOutcome, str]] = ..., reason_code: _Optional[str] = ..., next_allowed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "account_id", "kind", "at", "recorded_at", "amount", "promise_date", "channel", "outcome", "lat", "lon", "expiry_date", "reservation_id", "agent")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PROMISE_DATE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_DATE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    account_id: str
    kind: EventKind
    at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    amount: float
    promise_date: _date_pb2.Date
    channel: ContactChannel
    outcome: ContactOutcome
    lat: float
    lon: float
    expiry_date: _date_pb2.Date
    reservation_id: str
    agent: str
    def __init__(self, event_id: _Optional[str] = ..., account_id: _Optional[str] = ..., kind: _Optional[_Union[EventKind, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[float] = ..., promise_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., channel: _Optional[_Union[ContactChannel, str]] = ..., outcome: _Optional[_Union[ContactOutcome, str]] = ..., lat: _Optional[float] = ..., lon: _Optional[float] = ..., expiry_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., reservation_id: _Optional[str] = ..., agent: _Optional[str] = ...) -> None: ...
