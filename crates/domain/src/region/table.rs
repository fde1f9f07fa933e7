//! A shipped table of real GB/T 2260 administrative division codes: every province-level
//! division, every provincial capital, every city named in the domain primer, and a few more
//! prefecture-level cities, with their English and Chinese names.
//!
//! The table is data, not policy: it lets logs, certificates and the simulator name a region,
//! and lets tests pick real codes. A code missing from it is still a valid [`RegionCode`]; only
//! codes we are sure of are listed, so nothing here is invented.

use super::RegionCode;
// Short names keep each row of the table on one line: C for a city (prefecture level).
use RegionLevel::{Municipality as M, Prefecture as C, Province as P};

/// The level of an administrative division in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionLevel {
    /// A province-level division that is not a municipality: a province, an autonomous region,
    /// a special administrative region (Hong Kong, Macao) or Taiwan. Code `xx0000`.
    Province,
    /// A prefecture-level city, league or prefecture (`xxyy00`): the usual pooling region.
    Prefecture,
    /// One of the four municipalities directly under the central government (Beijing, Tianjin,
    /// Shanghai, Chongqing): province-level and a single pooling region. Code `xx0000`.
    Municipality,
}

/// One real administrative division from GB/T 2260.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownRegion {
    /// The six-digit division code.
    pub code: RegionCode,
    /// The usual English name, e.g. `"Hohhot"`.
    pub name: &'static str,
    /// The official Chinese name, e.g. `"呼和浩特市"`.
    pub name_zh: &'static str,
    /// Whether this is a province-level division, a municipality or a prefecture-level city.
    pub level: RegionLevel,
}

/// The division with this exact code, if the table lists it.
///
/// The lookup is exact: a county code such as `150102` is not found even though its city
/// `150100` is; ask for `code.pooling_region()` to name the pooling region instead.
pub fn known_region(code: RegionCode) -> Option<&'static KnownRegion> {
    KNOWN_REGIONS
        .binary_search_by_key(&code, |region| region.code)
        .ok()
        .and_then(|index| KNOWN_REGIONS.get(index))
}

/// Every division in the table, sorted by code.
pub fn known_regions() -> &'static [KnownRegion] {
    KNOWN_REGIONS
}

/// Shortens the table rows below.
const fn row(
    code: u32,
    name: &'static str,
    name_zh: &'static str,
    level: RegionLevel,
) -> KnownRegion {
    KnownRegion {
        code: RegionCode(code),
        name,
        name_zh,
        level,
    }
}

/// The table, sorted by code (a test keeps it sorted, unique and parseable).
static KNOWN_REGIONS: &[KnownRegion] = &[
    row(110000, "Beijing", "北京市", M),
    row(120000, "Tianjin", "天津市", M),
    row(130000, "Hebei", "河北省", P),
    row(130100, "Shijiazhuang", "石家庄市", C),
    row(130200, "Tangshan", "唐山市", C),
    row(130600, "Baoding", "保定市", C),
    row(140000, "Shanxi", "山西省", P),
    row(140100, "Taiyuan", "太原市", C),
    row(140200, "Datong", "大同市", C),
    row(150000, "Inner Mongolia", "内蒙古自治区", P),
    row(150100, "Hohhot", "呼和浩特市", C),
    row(150200, "Baotou", "包头市", C),
    row(150300, "Wuhai", "乌海市", C),
    row(150400, "Chifeng", "赤峰市", C),
    row(150500, "Tongliao", "通辽市", C),
    row(150600, "Ordos", "鄂尔多斯市", C),
    row(150700, "Hulunbuir", "呼伦贝尔市", C),
    row(150800, "Bayannur", "巴彦淖尔市", C),
    row(150900, "Ulanqab", "乌兰察布市", C),
    row(152200, "Hinggan League", "兴安盟", C),
    row(152500, "Xilingol League", "锡林郭勒盟", C),
    row(152900, "Alxa League", "阿拉善盟", C),
    row(210000, "Liaoning", "辽宁省", P),
    row(210100, "Shenyang", "沈阳市", C),
    row(210200, "Dalian", "大连市", C),
    row(220000, "Jilin", "吉林省", P),
    row(220100, "Changchun", "长春市", C),
    row(230000, "Heilongjiang", "黑龙江省", P),
    row(230100, "Harbin", "哈尔滨市", C),
    row(310000, "Shanghai", "上海市", M),
    row(320000, "Jiangsu", "江苏省", P),
    row(320100, "Nanjing", "南京市", C),
    row(320200, "Wuxi", "无锡市", C),
    row(320300, "Xuzhou", "徐州市", C),
    row(320400, "Changzhou", "常州市", C),
    row(320500, "Suzhou", "苏州市", C),
    row(330000, "Zhejiang", "浙江省", P),
    row(330100, "Hangzhou", "杭州市", C),
    row(330200, "Ningbo", "宁波市", C),
    row(330300, "Wenzhou", "温州市", C),
    row(340000, "Anhui", "安徽省", P),
    row(340100, "Hefei", "合肥市", C),
    row(350000, "Fujian", "福建省", P),
    row(350100, "Fuzhou", "福州市", C),
    row(350200, "Xiamen", "厦门市", C),
    row(360000, "Jiangxi", "江西省", P),
    row(360100, "Nanchang", "南昌市", C),
    row(370000, "Shandong", "山东省", P),
    row(370100, "Jinan", "济南市", C),
    row(370200, "Qingdao", "青岛市", C),
    row(370600, "Yantai", "烟台市", C),
    row(410000, "Henan", "河南省", P),
    row(410100, "Zhengzhou", "郑州市", C),
    row(410300, "Luoyang", "洛阳市", C),
    row(420000, "Hubei", "湖北省", P),
    row(420100, "Wuhan", "武汉市", C),
    row(430000, "Hunan", "湖南省", P),
    row(430100, "Changsha", "长沙市", C),
    row(440000, "Guangdong", "广东省", P),
    row(440100, "Guangzhou", "广州市", C),
    row(440200, "Shaoguan", "韶关市", C),
    row(440300, "Shenzhen", "深圳市", C),
    row(440400, "Zhuhai", "珠海市", C),
    row(440500, "Shantou", "汕头市", C),
    row(440600, "Foshan", "佛山市", C),
    row(440700, "Jiangmen", "江门市", C),
    row(440800, "Zhanjiang", "湛江市", C),
    row(440900, "Maoming", "茂名市", C),
    row(441200, "Zhaoqing", "肇庆市", C),
    row(441300, "Huizhou", "惠州市", C),
    row(441400, "Meizhou", "梅州市", C),
    row(441500, "Shanwei", "汕尾市", C),
    row(441600, "Heyuan", "河源市", C),
    row(441700, "Yangjiang", "阳江市", C),
    row(441800, "Qingyuan", "清远市", C),
    row(441900, "Dongguan", "东莞市", C),
    row(442000, "Zhongshan", "中山市", C),
    row(445100, "Chaozhou", "潮州市", C),
    row(445200, "Jieyang", "揭阳市", C),
    row(445300, "Yunfu", "云浮市", C),
    row(450000, "Guangxi", "广西壮族自治区", P),
    row(450100, "Nanning", "南宁市", C),
    row(450200, "Liuzhou", "柳州市", C),
    row(450300, "Guilin", "桂林市", C),
    row(460000, "Hainan", "海南省", P),
    row(460100, "Haikou", "海口市", C),
    row(460200, "Sanya", "三亚市", C),
    row(500000, "Chongqing", "重庆市", M),
    row(510000, "Sichuan", "四川省", P),
    row(510100, "Chengdu", "成都市", C),
    row(520000, "Guizhou", "贵州省", P),
    row(520100, "Guiyang", "贵阳市", C),
    row(530000, "Yunnan", "云南省", P),
    row(530100, "Kunming", "昆明市", C),
    row(540000, "Tibet", "西藏自治区", P),
    row(540100, "Lhasa", "拉萨市", C),
    row(610000, "Shaanxi", "陕西省", P),
    row(610100, "Xi'an", "西安市", C),
    row(620000, "Gansu", "甘肃省", P),
    row(620100, "Lanzhou", "兰州市", C),
    row(630000, "Qinghai", "青海省", P),
    row(630100, "Xining", "西宁市", C),
    row(640000, "Ningxia", "宁夏回族自治区", P),
    row(640100, "Yinchuan", "银川市", C),
    row(650000, "Xinjiang", "新疆维吾尔自治区", P),
    row(650100, "Urumqi", "乌鲁木齐市", C),
    row(710000, "Taiwan", "台湾省", P),
    row(810000, "Hong Kong", "香港特别行政区", P),
    row(820000, "Macao", "澳门特别行政区", P),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn code(value: u32) -> RegionCode {
        RegionCode::parse(&format!("{value:06}")).expect("a valid code")
    }

    #[test]
    fn every_code_in_the_table_parses_back_to_itself() {
        for region in known_regions() {
            let text = region.code.to_string();
            assert_eq!(RegionCode::parse(&text), Ok(region.code), "{}", region.name);
        }
    }

    #[test]
    fn codes_are_unique_and_sorted() {
        for pair in known_regions().windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{:?} then {:?}",
                pair[0].code,
                pair[1].code
            );
        }
    }

    #[test]
    fn there_are_34_province_level_divisions_each_ending_in_0000() {
        let province_level: Vec<_> = known_regions()
            .iter()
            .filter(|region| region.level != RegionLevel::Prefecture)
            .collect();
        assert_eq!(province_level.len(), 34);
        for region in province_level {
            assert_eq!(region.code.value() % 10_000, 0, "{}", region.name);
        }
    }

    #[test]
    fn only_the_four_municipalities_are_municipalities() {
        let municipalities: Vec<u32> = known_regions()
            .iter()
            .filter(|region| region.level == RegionLevel::Municipality)
            .map(|region| region.code.value())
            .collect();
        assert_eq!(municipalities, [110000, 120000, 310000, 500000]);
    }

    #[test]
    fn every_prefecture_is_its_own_pooling_region_inside_a_listed_province() {
        for region in known_regions()
            .iter()
            .filter(|r| r.level == RegionLevel::Prefecture)
        {
            assert_ne!(region.code.value() % 10_000, 0, "{}", region.name);
            assert_eq!(region.code.value() % 100, 0, "{}", region.name);
            assert_eq!(region.code.pooling_region(), region.code, "{}", region.name);
            let province = code(u32::from(region.code.province().value()) * 10_000);
            assert_eq!(
                known_region(province).map(|p| p.level),
                Some(RegionLevel::Province),
                "{}",
                region.name
            );
        }
    }

    #[test]
    fn every_provincial_capital_is_listed() {
        let capitals = [
            (110000, "Beijing"),
            (120000, "Tianjin"),
            (130100, "Shijiazhuang"),
            (140100, "Taiyuan"),
            (150100, "Hohhot"),
            (210100, "Shenyang"),
            (220100, "Changchun"),
            (230100, "Harbin"),
            (310000, "Shanghai"),
            (320100, "Nanjing"),
            (330100, "Hangzhou"),
            (340100, "Hefei"),
            (350100, "Fuzhou"),
            (360100, "Nanchang"),
            (370100, "Jinan"),
            (410100, "Zhengzhou"),
            (420100, "Wuhan"),
            (430100, "Changsha"),
            (440100, "Guangzhou"),
            (450100, "Nanning"),
            (460100, "Haikou"),
            (500000, "Chongqing"),
            (510100, "Chengdu"),
            (520100, "Guiyang"),
            (530100, "Kunming"),
            (540100, "Lhasa"),
            (610100, "Xi'an"),
            (620100, "Lanzhou"),
            (630100, "Xining"),
            (640100, "Yinchuan"),
            (650100, "Urumqi"),
        ];
        for (value, name) in capitals {
            assert_eq!(known_region(code(value)).map(|r| r.name), Some(name));
        }
    }

    #[test]
    fn every_city_named_in_the_domain_primer_is_listed() {
        let primer = [
            (150100, "呼和浩特市"),
            (150900, "乌兰察布市"),
            (540100, "拉萨市"),
            (610100, "西安市"),
            (500000, "重庆市"),
            (440100, "广州市"),
            (440300, "深圳市"),
            (320100, "南京市"),
            (410100, "郑州市"),
            (370200, "青岛市"),
            (310000, "上海市"),
            (440000, "广东省"),
            (150000, "内蒙古自治区"),
        ];
        for (value, name_zh) in primer {
            assert_eq!(known_region(code(value)).map(|r| r.name_zh), Some(name_zh));
        }
    }

    #[test]
    fn a_county_code_is_not_found_but_its_pooling_region_is() {
        let county = code(150102);
        assert_eq!(known_region(county), None);
        assert_eq!(
            known_region(county.pooling_region()).map(|r| r.name),
            Some("Hohhot")
        );
    }
}
