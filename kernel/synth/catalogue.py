"""Reference data the synthetic book draws from: regions, vehicles, names, by country.

Each country is its own market: :data:`BRANDS` are the Chinese market's brands and models with
indicative new-car prices in CNY (2026), :data:`US_BRANDS` the US market's in USD (indicative
MSRPs, 2026); ``depreciation`` is the brand's typical yearly loss of value used by the generator
(a geometric curve), ``ev_share`` the share of battery-electric and plug-in versions sold.
:data:`ALL_BRANDS` is both lists, Chinese first (brand and model indices in the generator and
the RV model's categories are into it).
"""
from __future__ import annotations

# region code, weight, time zone, plate prefix, latitude, longitude, name
CN_REGIONS = (
    ("CN-GD", 12.0, "Asia/Shanghai", "粤B", 23.13, 113.26, "广东省深圳市南山区"),
    ("CN-JS", 9.0, "Asia/Shanghai", "苏A", 32.06, 118.80, "江苏省南京市鼓楼区"),
    ("CN-ZJ", 8.0, "Asia/Shanghai", "浙A", 30.27, 120.15, "浙江省杭州市西湖区"),
    ("CN-SD", 8.0, "Asia/Shanghai", "鲁A", 36.65, 117.12, "山东省济南市历下区"),
    ("CN-HA", 6.0, "Asia/Shanghai", "豫A", 34.75, 113.62, "河南省郑州市金水区"),
    ("CN-SC", 6.0, "Asia/Shanghai", "川A", 30.66, 104.07, "四川省成都市武侯区"),
    ("CN-HB", 5.0, "Asia/Shanghai", "鄂A", 30.59, 114.31, "湖北省武汉市江汉区"),
    ("CN-BJ", 5.0, "Asia/Shanghai", "京N", 39.90, 116.40, "北京市朝阳区"),
    ("CN-SH", 5.0, "Asia/Shanghai", "沪A", 31.23, 121.47, "上海市浦东新区"),
    ("CN-HE", 4.0, "Asia/Shanghai", "冀A", 38.04, 114.51, "河北省石家庄市长安区"),
    ("CN-HN", 4.0, "Asia/Shanghai", "湘A", 28.23, 112.94, "湖南省长沙市岳麓区"),
    ("CN-FJ", 4.0, "Asia/Shanghai", "闽D", 24.48, 118.09, "福建省厦门市思明区"),
    ("CN-AH", 4.0, "Asia/Shanghai", "皖A", 31.82, 117.23, "安徽省合肥市蜀山区"),
    ("CN-SN", 3.0, "Asia/Shanghai", "陕A", 34.34, 108.94, "陕西省西安市雁塔区"),
    ("CN-LN", 3.0, "Asia/Shanghai", "辽A", 41.80, 123.43, "辽宁省沈阳市和平区"),
    ("CN-CQ", 3.0, "Asia/Shanghai", "渝A", 29.56, 106.55, "重庆市渝北区"),
    ("CN-YN", 2.0, "Asia/Shanghai", "云A", 25.04, 102.71, "云南省昆明市五华区"),
    ("CN-XJ", 1.0, "Asia/Urumqi", "新A", 43.83, 87.62, "新疆维吾尔自治区乌鲁木齐市天山区"),
)

US_REGIONS = (
    ("US-CA", 4.0, "America/Los_Angeles", "CA", 34.05, -118.24, "Los Angeles, CA"),
    ("US-TX", 3.0, "America/Chicago", "TX", 29.76, -95.37, "Houston, TX"),
    ("US-NY", 2.0, "America/New_York", "NY", 40.71, -74.01, "New York, NY"),
    ("US-FL", 2.0, "America/New_York", "FL", 25.76, -80.19, "Miami, FL"),
    ("US-AZ", 1.0, "America/Phoenix", "AZ", 33.45, -112.07, "Phoenix, AZ"),
)

# brand, weight, yearly depreciation, ev share, ((model, new price CNY), ...)
BRANDS = (
    ("Volkswagen", 14.0, 0.13, 0.05, (("Lavida", 120_000), ("Sagitar", 150_000), ("Tiguan L", 230_000), ("Magotan", 200_000))),
    ("Toyota", 11.0, 0.10, 0.10, (("Corolla", 125_000), ("Camry", 200_000), ("RAV4", 210_000), ("Highlander", 300_000))),
    ("Honda", 8.0, 0.11, 0.08, (("Civic", 130_000), ("Accord", 190_000), ("CR-V", 200_000))),
    ("BYD", 14.0, 0.16, 0.95, (("Qin PLUS", 110_000), ("Song PLUS", 160_000), ("Han", 220_000), ("Seal", 200_000))),
    ("Tesla", 4.0, 0.15, 1.00, (("Model 3", 240_000), ("Model Y", 260_000))),
    ("BMW", 5.0, 0.17, 0.12, (("3 Series", 300_000), ("5 Series", 430_000), ("X3", 400_000))),
    ("Mercedes-Benz", 5.0, 0.17, 0.10, (("C-Class", 320_000), ("E-Class", 450_000), ("GLC", 430_000))),
    ("Audi", 5.0, 0.18, 0.08, (("A4L", 300_000), ("A6L", 420_000), ("Q5L", 400_000))),
    ("Geely", 8.0, 0.17, 0.40, (("Emgrand", 80_000), ("Boyue L", 130_000), ("Galaxy E8", 180_000))),
    ("Changan", 6.0, 0.18, 0.30, (("CS75 PLUS", 120_000), ("Eado", 80_000), ("Deepal S7", 160_000))),
    ("Haval", 5.0, 0.17, 0.15, (("H6", 120_000), ("Big Dog", 150_000))),
    ("Buick", 4.0, 0.16, 0.05, (("Excelle", 90_000), ("GL8", 280_000))),
    ("Nissan", 4.0, 0.14, 0.05, (("Sylphy", 110_000), ("X-Trail", 180_000))),
    ("NIO", 2.0, 0.22, 1.00, (("ET5", 300_000), ("ES6", 340_000))),
    ("Li Auto", 3.0, 0.18, 1.00, (("L7", 320_000), ("L9", 420_000))),
)

# the US market, prices in USD
US_BRANDS = (
    ("Ford", 13.0, 0.15, 0.04, (("F-150", 47_000), ("Escape", 30_000), ("Explorer", 41_000))),
    ("Chevrolet", 12.0, 0.16, 0.04, (("Silverado 1500", 45_000), ("Equinox", 29_000), ("Malibu", 26_000))),
    ("Toyota", 14.0, 0.10, 0.08, (("Camry", 29_000), ("RAV4", 32_000), ("Corolla", 23_000), ("Tacoma", 35_000))),
    ("Honda", 10.0, 0.11, 0.05, (("Civic", 26_000), ("CR-V", 32_000), ("Accord", 29_000))),
    ("Nissan", 7.0, 0.16, 0.03, (("Rogue", 31_000), ("Altima", 28_000), ("Sentra", 22_000))),
    ("Hyundai", 6.0, 0.14, 0.08, (("Tucson", 30_000), ("Elantra", 23_000))),
    ("Kia", 5.0, 0.14, 0.06, (("Sportage", 29_000), ("Forte", 21_000))),
    ("Jeep", 6.0, 0.17, 0.05, (("Grand Cherokee", 42_000), ("Wrangler", 37_000))),
    ("Ram", 5.0, 0.15, 0.0, (("1500", 45_000),)),
    ("Tesla", 3.0, 0.15, 1.00, (("Model 3", 40_000), ("Model Y", 46_000))),
)

ALL_BRANDS = BRANDS + US_BRANDS

# currency of each country's loans (accounts.currency); a country's amounts are only ever in it
CURRENCY = {"CN": "CNY", "US": "USD"}

CN_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢"
CN_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
            "超", "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "晓东", "海燕", "子涵", "浩然", "雨轩", "欣怡")
US_GIVEN = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
            "Elizabeth", "William", "Barbara", "Maria", "Jose", "Wei", "Priya")
US_SURNAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
               "Rodriguez", "Martinez", "Hernandez", "Lopez", "Chen", "Nguyen", "Patel", "Kim")
