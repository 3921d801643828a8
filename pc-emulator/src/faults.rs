//! The fault spec grammar and the engine that decides, request by request, what goes wrong.
//!
//! Grammar (also in the README): `spec = rule *("," rule)`, `rule = kind *(":" key "=" value)`.
//! Faults apply to the referrals API only. Counters and the probability stream are seeded, so a
//! given spec, seed and request sequence always fails the same way.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

use crate::rng::SeededRng;

/// When a per-request fault fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// On every k-th authenticated API request (k, 2k, 3k, ...).
    Every(u32),
    /// On each authenticated API request with this probability, from the seeded stream.
    Probability(f64),
}

/// One rule of a [`FaultSpec`].
#[derive(Debug, Clone, PartialEq)]
pub enum FaultRule {
    /// Answer with this status (429, 500, 502, 503 or 504) and an error body; 429 always carries
    /// `Retry-After` (default 1 s), the others only when `retry_after` is given.
    Status {
        status: u16,
        trigger: Trigger,
        retry_after: Option<u32>,
    },
    /// Drop the connection without writing a response (the client sees a reset).
    Reset { trigger: Trigger },
    /// Delay the response.
    Slow { trigger: Trigger, delay: Duration },
    /// Serve page `page` (1-based, `offset / $top + 1`) of a listing as truncated JSON, once.
    Malformed { page: u32 },
    /// Each access token answers 401 (expired) once it has served `after` API requests.
    TokenExpire { after: u32 },
    /// When the `after`-th API request arrives, every refresh token issued so far is revoked, once.
    RefreshRevoke { after: u32 },
    /// Right after page `page` of a listing is served, update `count` referrals among those that
    /// listing already returned, once: a client paging by `updatedDateTime` then misses rows.
    MutateDuringPaging { page: u32, count: usize },
}

impl FaultRule {
    /// The name under which [`crate::Stats::faults_injected`] counts this rule.
    pub fn kind(&self) -> String {
        match self {
            FaultRule::Status { status, .. } => status.to_string(),
            FaultRule::Reset { .. } => "reset".into(),
            FaultRule::Slow { .. } => "slow".into(),
            FaultRule::Malformed { .. } => "malformed".into(),
            FaultRule::TokenExpire { .. } => "token_expire".into(),
            FaultRule::RefreshRevoke { .. } => "refresh_revoke".into(),
            FaultRule::MutateDuringPaging { .. } => "mutate_during_paging".into(),
        }
    }

    fn trigger(&self) -> Option<Trigger> {
        match self {
            FaultRule::Status { trigger, .. }
            | FaultRule::Reset { trigger }
            | FaultRule::Slow { trigger, .. } => Some(*trigger),
            _ => None,
        }
    }
}

/// A set of faults, parsed from e.g. `429:every=5:retry_after=1,503:p=0.1,reset:every=9`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    pub rules: Vec<FaultRule>,
}

/// A fault spec that does not parse; names the rule and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("fault rule `{rule}`: {problem}")]
pub struct FaultSpecError {
    pub rule: String,
    pub problem: String,
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> FaultSpec {
        FaultSpec::default()
    }

    /// Parses the grammar described in the module doc; an empty string means no faults.
    pub fn parse(spec: &str) -> Result<FaultSpec, FaultSpecError> {
        let rules = spec
            .split(',')
            .map(str::trim)
            .filter(|rule| !rule.is_empty())
            .map(parse_rule)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FaultSpec { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultSpec::parse(s)
    }
}

impl fmt::Display for FaultSpec {
    /// The canonical spec string; parsing it gives the same spec back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Every(k) => write!(f, "every={k}"),
            Trigger::Probability(p) => write!(f, "p={p}"),
        }
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultRule::Status {
                status,
                trigger,
                retry_after,
            } => {
                write!(f, "{status}:{trigger}")?;
                if let Some(secs) = retry_after {
                    write!(f, ":retry_after={secs}")?;
                }
                Ok(())
            }
            FaultRule::Reset { trigger } => write!(f, "reset:{trigger}"),
            FaultRule::Slow { trigger, delay } => {
                write!(f, "slow:{trigger}:ms={}", delay.as_millis())
            }
            FaultRule::Malformed { page } => write!(f, "malformed:page={page}"),
            FaultRule::TokenExpire { after } => write!(f, "token_expire:after={after}"),
            FaultRule::RefreshRevoke { after } => write!(f, "refresh_revoke:after={after}"),
            FaultRule::MutateDuringPaging { page, count } => {
                write!(f, "mutate_during_paging:page={page}:count={count}")
            }
        }
    }
}

/// The key=value parameters of one rule, consumed as they are read so leftovers can be refused.
struct Params<'a> {
    rule: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    fn error(&self, problem: impl Into<String>) -> FaultSpecError {
        FaultSpecError {
            rule: self.rule.to_string(),
            problem: problem.into(),
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a str> {
        let pos = self.pairs.iter().position(|(k, _)| *k == key)?;
        Some(self.pairs.remove(pos).1)
    }

    fn number<T>(&mut self, key: &str, min: T) -> Result<Option<T>, FaultSpecError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.take(key) else {
            return Ok(None);
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min => Ok(Some(v)),
            _ => Err(self.error(format!(
                "`{key}={raw}` is not a whole number of at least {min}"
            ))),
        }
    }

    fn required<T>(&mut self, key: &str, min: T) -> Result<T, FaultSpecError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.number(key, min)?
            .ok_or_else(|| self.error(format!("needs `{key}=`")))
    }

    fn trigger(&mut self) -> Result<Trigger, FaultSpecError> {
        let every = self.number::<u32>("every", 1)?;
        let p = match self.take("p") {
            None => None,
            Some(raw) => match raw.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 1.0 => Some(p),
                _ => {
                    return Err(self.error(format!("`p={raw}` is not a probability in (0, 1]")));
                }
            },
        };
        match (every, p) {
            (Some(k), None) => Ok(Trigger::Every(k)),
            (None, Some(p)) => Ok(Trigger::Probability(p)),
            _ => Err(self.error("needs exactly one of `every=k` or `p=probability`")),
        }
    }

    fn finish(self, rule: FaultRule) -> Result<FaultRule, FaultSpecError> {
        match self.pairs.first() {
            None => Ok(rule),
            Some((key, _)) => Err(self.error(format!("unknown parameter `{key}`"))),
        }
    }
}

fn parse_rule(rule: &str) -> Result<FaultRule, FaultSpecError> {
    let mut parts = rule.split(':').map(str::trim);
    let kind = parts.next().unwrap_or_default();
    let mut params = Params {
        rule,
        pairs: Vec::new(),
    };
    for part in parts {
        match part.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => params.pairs.push((k.trim(), v.trim())),
            _ => return Err(params.error(format!("`{part}` is not key=value"))),
        }
    }
    let parsed = match kind {
        "429" | "500" | "502" | "503" | "504" => {
            let status = kind.parse::<u16>().unwrap_or(500);
            let trigger = params.trigger()?;
            let retry_after = params.number::<u32>("retry_after", 0)?;
            FaultRule::Status {
                status,
                trigger,
                retry_after: if status == 429 {
                    Some(retry_after.unwrap_or(1))
                } else {
                    retry_after
                },
            }
        }
        "reset" => FaultRule::Reset {
            trigger: params.trigger()?,
        },
        "slow" => {
            let trigger = params.trigger()?;
            let ms = params.required::<u64>("ms", 1)?;
            FaultRule::Slow {
                trigger,
                delay: Duration::from_millis(ms),
            }
        }
        "malformed" => FaultRule::Malformed {
            page: params.required("page", 1)?,
        },
        "token_expire" => FaultRule::TokenExpire {
            after: params.required("after", 1)?,
        },
        "refresh_revoke" => FaultRule::RefreshRevoke {
            after: params.required("after", 1)?,
        },
        "mutate_during_paging" => FaultRule::MutateDuringPaging {
            page: params.required("page", 1)?,
            count: params.required("count", 1)?,
        },
        other => {
            return Err(params.error(format!(
                "unknown kind `{other}`; expected 429, 500, 502, 503, 504, reset, slow, malformed, \
                 token_expire, refresh_revoke or mutate_during_paging"
            )));
        }
    };
    params.finish(parsed)
}

/// What the per-request rules decided for one API request.
#[derive(Debug, Default)]
pub(crate) struct RequestFaults {
    /// Status and optional `Retry-After` seconds to answer with instead of the real response.
    pub status: Option<(u16, Option<u32>)>,
    /// Drop the connection instead of answering.
    pub reset: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Revoke every refresh token issued so far (the `refresh_revoke` rule just came due).
    pub revoke_refresh_tokens: bool,
    /// Kinds of the rules that fired, for the statistics.
    pub fired: Vec<String>,
}

/// What the page rules decided for one served listing page.
#[derive(Debug, Default)]
pub(crate) struct PageFaults {
    pub malformed: bool,
    pub mutate: Option<usize>,
    pub fired: Vec<String>,
}

/// Runtime state of a [`FaultSpec`]: request counter, seeded stream, once-only rules spent.
pub(crate) struct FaultEngine {
    spec: FaultSpec,
    rng: SeededRng,
    api_requests: u64,
    spent: Vec<bool>,
}

impl FaultEngine {
    pub fn new(spec: FaultSpec, seed: u64) -> FaultEngine {
        let spent = vec![false; spec.rules.len()];
        FaultEngine {
            spec,
            rng: SeededRng::for_item(seed, 0x6661_756c_7473, 0),
            api_requests: 0,
            spent,
        }
    }

    /// Counts one authenticated API request and decides its fate. When several rules fire, the
    /// first in the spec picks the response; `slow` delays whatever is served.
    pub fn on_api_request(&mut self) -> RequestFaults {
        self.api_requests += 1;
        let n = self.api_requests;
        let mut out = RequestFaults::default();
        for (i, rule) in self.spec.rules.iter().enumerate() {
            let fires = match rule.trigger() {
                Some(Trigger::Every(k)) => n.is_multiple_of(u64::from(k)),
                // Drawn for every request so the stream does not depend on other rules.
                Some(Trigger::Probability(p)) => self.rng.random_bool(p),
                None => false,
            };
            match rule {
                FaultRule::Status {
                    status,
                    retry_after,
                    ..
                } if fires && out.status.is_none() && !out.reset => {
                    out.status = Some((*status, *retry_after));
                    out.fired.push(rule.kind());
                }
                FaultRule::Reset { .. } if fires && out.status.is_none() && !out.reset => {
                    out.reset = true;
                    out.fired.push(rule.kind());
                }
                FaultRule::Slow { delay, .. } if fires => {
                    out.delay = Some(out.delay.unwrap_or_default().max(*delay));
                    out.fired.push(rule.kind());
                }
                FaultRule::RefreshRevoke { after } if !self.spent[i] && n >= u64::from(*after) => {
                    self.spent[i] = true;
                    out.revoke_refresh_tokens = true;
                    out.fired.push(rule.kind());
                }
                _ => {}
            }
        }
        out
    }

    /// The `token_expire` limit, if any (the smallest when given twice).
    pub fn token_expire_after(&self) -> Option<u32> {
        self.spec
            .rules
            .iter()
            .filter_map(|rule| match rule {
                FaultRule::TokenExpire { after } => Some(*after),
                _ => None,
            })
            .min()
    }

    /// Decides the once-only page rules for page `page` (1-based) of a listing.
    pub fn on_page(&mut self, page: u32) -> PageFaults {
        let mut out = PageFaults::default();
        for (i, rule) in self.spec.rules.iter().enumerate() {
            if self.spent[i] {
                continue;
            }
            match rule {
                FaultRule::Malformed { page: p } if *p == page => {
                    self.spent[i] = true;
                    out.malformed = true;
                    out.fired.push(rule.kind());
                }
                FaultRule::MutateDuringPaging { page: p, count } if *p == page => {
                    self.spent[i] = true;
                    out.mutate = Some(out.mutate.unwrap_or(0) + count);
                    out.fired.push(rule.kind());
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example_and_round_trips() {
        let text = "429:every=5:retry_after=1,503:p=0.1,500:every=7,reset:every=9,slow:every=4:ms=1500,\
                    malformed:page=3,token_expire:after=50,refresh_revoke:after=100,\
                    mutate_during_paging:page=2:count=5";
        let spec = FaultSpec::parse(text).expect("valid spec");
        assert_eq!(spec.rules.len(), 9);
        assert_eq!(
            spec.rules[0],
            FaultRule::Status {
                status: 429,
                trigger: Trigger::Every(5),
                retry_after: Some(1)
            }
        );
        assert_eq!(FaultSpec::parse(&spec.to_string()), Ok(spec));
    }

    #[test]
    fn refuses_bad_rules_by_name() {
        for bad in [
            "418:every=2",
            "429",
            "429:every=0",
            "503:p=1.5",
            "503:every=2:p=0.5",
            "slow:every=2",
            "malformed",
            "reset:every=2:colour=red",
            "reset:every",
        ] {
            let err = FaultSpec::parse(bad).expect_err(bad);
            assert_eq!(err.rule, bad, "{err}");
        }
        assert_eq!(FaultSpec::parse(" "), Ok(FaultSpec::none()));
    }

    #[test]
    fn every_fires_on_multiples_and_first_rule_wins() {
        let spec = FaultSpec::parse("500:every=2,503:every=2,slow:every=3:ms=5").expect("valid");
        let mut engine = FaultEngine::new(spec, 1);
        let statuses: Vec<_> = (0..6)
            .map(|_| engine.on_api_request())
            .map(|f| (f.status.map(|s| s.0), f.delay.is_some()))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (None, false),
                (Some(500), false),
                (None, true),
                (Some(500), false),
                (None, false),
                (Some(500), true)
            ]
        );
    }

    #[test]
    fn page_rules_fire_once() {
        let spec = FaultSpec::parse("malformed:page=2").expect("valid");
        let mut engine = FaultEngine::new(spec, 1);
        assert!(!engine.on_page(1).malformed);
        assert!(engine.on_page(2).malformed);
        assert!(!engine.on_page(2).malformed);
    }
}
