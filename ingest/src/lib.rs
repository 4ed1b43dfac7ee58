//! Activity files into samples: FIT (the `fitparser` crate), GPX 1.0 and 1.1, and TCX. Pure:
//! bytes in, samples out, so `stridelog analyze activity` and the import path run exactly the
//! same code. A file that cannot be read gives an [`ImportError`] naming the problem.

use chrono::{DateTime, Utc};
use domain::activity::{ActivitySource, Sport};
use domain::efficiency::Sample;

/// FIT position fields are semicircles: 2^31 of them make 180 degrees.
const DEGREES_PER_SEMICIRCLE: f64 = 180.0 / 2_147_483_648.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Fit,
    Gpx,
    Tcx,
}

impl Format {
    /// From a file name's extension.
    pub fn of_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "fit" => Some(Self::Fit),
            "gpx" => Some(Self::Gpx),
            "tcx" => Some(Self::Tcx),
            _ => None,
        }
    }

    pub fn source(self) -> ActivitySource {
        match self {
            Self::Fit => ActivitySource::Fit,
            Self::Gpx => ActivitySource::Gpx,
            Self::Tcx => ActivitySource::Tcx,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    #[error("unsupported file type (expected .fit, .gpx or .tcx)")]
    Unsupported,
    #[error("not a readable FIT file: {0}")]
    Fit(String),
    #[error("not a readable {0} file: {1}")]
    Xml(&'static str, String),
    #[error("the file has no timed track points")]
    Empty,
}

/// What a file holds: its sport, when it started, and its samples in recording order, with
/// `t_s` counted from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub format: Format,
    pub sport: Sport,
    pub start_time: DateTime<Utc>,
    pub samples: Vec<Sample>,
}

pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, ImportError> {
    match format {
        Format::Fit => fit(bytes),
        Format::Gpx => gpx(bytes),
        Format::Tcx => tcx(bytes),
    }
}

/// Timed points as read, before times are made relative to the start.
struct Raw {
    at: DateTime<Utc>,
    sample: Sample,
}

fn finish(format: Format, sport: Sport, raw: Vec<Raw>) -> Result<Parsed, ImportError> {
    let start = raw.first().ok_or(ImportError::Empty)?.at;
    let samples = raw
        .into_iter()
        .map(|r| Sample {
            t_s: Some((r.at - start).num_milliseconds() as f64 / 1000.0),
            ..r.sample
        })
        .collect();
    Ok(Parsed {
        format,
        sport,
        start_time: start,
        samples,
    })
}

fn sport_of(name: &str) -> Sport {
    let n = name.to_ascii_lowercase();
    if n.contains("trail") {
        Sport::TrailRun
    } else if n.contains("treadmill") {
        Sport::TreadmillRun
    } else if n.contains("run") {
        Sport::Run
    } else if n.contains("walk") || n.contains("hik") {
        Sport::Walk
    } else if n.contains("cycl") || n.contains("bik") || n.contains("ride") {
        Sport::Ride
    } else {
        Sport::Other
    }
}

// --- FIT -------------------------------------------------------------------------------------

fn number(v: &fitparser::Value) -> Option<f64> {
    use fitparser::Value as V;
    Some(match v {
        V::Byte(x) | V::UInt8(x) | V::UInt8z(x) | V::Enum(x) => f64::from(*x),
        V::SInt8(x) => f64::from(*x),
        V::SInt16(x) => f64::from(*x),
        V::UInt16(x) | V::UInt16z(x) => f64::from(*x),
        V::SInt32(x) => f64::from(*x),
        V::UInt32(x) | V::UInt32z(x) => f64::from(*x),
        V::SInt64(x) => *x as f64,
        V::UInt64(x) | V::UInt64z(x) => *x as f64,
        V::Float32(x) => f64::from(*x),
        V::Float64(x) => *x,
        _ => return None,
    })
}

fn fit(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let records = fitparser::from_bytes(bytes).map_err(|e| ImportError::Fit(e.to_string()))?;
    let mut raw = Vec::new();
    let mut sport = None;
    for r in &records {
        match r.kind() {
            fitparser::profile::MesgNum::Record => {
                let mut at = None;
                let mut s = Sample::default();
                let (mut altitude, mut enhanced) = (None, None);
                for f in r.fields() {
                    let v = f.value();
                    match f.name() {
                        "timestamp" => {
                            if let fitparser::Value::Timestamp(t) = v {
                                at = Some(t.with_timezone(&Utc));
                            }
                        }
                        "distance" => s.distance_m = number(v),
                        "heart_rate" => s.hr_bpm = number(v),
                        "altitude" => altitude = number(v),
                        "enhanced_altitude" => enhanced = number(v),
                        "position_lat" => s.lat_deg = number(v).map(|x| x * DEGREES_PER_SEMICIRCLE),
                        "position_long" => {
                            s.lon_deg = number(v).map(|x| x * DEGREES_PER_SEMICIRCLE)
                        }
                        _ => {}
                    }
                }
                // Enhanced altitude has the wider range and finer resolution where present.
                s.altitude_m = enhanced.or(altitude);
                if let Some(at) = at {
                    raw.push(Raw { at, sample: s });
                }
            }
            fitparser::profile::MesgNum::Session | fitparser::profile::MesgNum::Sport
                if sport.is_none() =>
            {
                let field = |name: &str| {
                    r.fields()
                        .iter()
                        .find(|f| f.name() == name)
                        .map(|f| f.value().to_string())
                };
                let sub = field("sub_sport").unwrap_or_default();
                if let Some(main) = field("sport") {
                    sport = Some(match (sport_of(&main), sub.as_str()) {
                        (Sport::Run, "trail") => Sport::TrailRun,
                        (Sport::Run, "treadmill") => Sport::TreadmillRun,
                        (s, _) => s,
                    });
                }
            }
            _ => {}
        }
    }
    finish(Format::Fit, sport.unwrap_or(Sport::Other), raw)
}

// --- GPX and TCX -----------------------------------------------------------------------------

fn child<'a>(node: roxmltree::Node<'a, 'a>, local: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == local)
}

fn text_f64(node: Option<roxmltree::Node<'_, '_>>) -> Option<f64> {
    node?
        .text()?
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

fn time_of(node: Option<roxmltree::Node<'_, '_>>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(node?.text()?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Heart rate in a track point's extensions, under any namespace prefix: Garmin's
/// TrackPointExtension `hr`, or `heartrate`/`bpm` from other exporters.
fn extension_hr(point: roxmltree::Node<'_, '_>) -> Option<f64> {
    let ext = child(point, "extensions")?;
    ext.descendants()
        .find(|n| n.is_element() && matches!(n.tag_name().name(), "hr" | "heartrate" | "bpm"))
        .and_then(|n| text_f64(Some(n)))
}

fn xml(kind: &'static str, bytes: &[u8]) -> Result<String, ImportError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ImportError::Xml(kind, "not UTF-8 text".into()))
}

fn gpx(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let text = xml("GPX", bytes)?;
    let doc =
        roxmltree::Document::parse(&text).map_err(|e| ImportError::Xml("GPX", e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "gpx" {
        return Err(ImportError::Xml(
            "GPX",
            "the root element is not <gpx>".into(),
        ));
    }
    let mut sport = None;
    let mut raw = Vec::new();
    for trk in root.children().filter(|n| n.tag_name().name() == "trk") {
        if sport.is_none() {
            sport = child(trk, "type")
                .and_then(|t| t.text())
                .map(sport_of)
                .or(Some(Sport::Run));
        }
        for pt in trk.descendants().filter(|n| n.tag_name().name() == "trkpt") {
            let Some(at) = time_of(child(pt, "time")) else {
                continue;
            };
            let attr = |name: &str| {
                pt.attribute(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            raw.push(Raw {
                at,
                sample: Sample {
                    lat_deg: attr("lat"),
                    lon_deg: attr("lon"),
                    altitude_m: text_f64(child(pt, "ele")),
                    hr_bpm: extension_hr(pt),
                    ..Sample::default()
                },
            });
        }
    }
    finish(Format::Gpx, sport.unwrap_or(Sport::Run), raw)
}

fn tcx(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let text = xml("TCX", bytes)?;
    let doc =
        roxmltree::Document::parse(&text).map_err(|e| ImportError::Xml("TCX", e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "TrainingCenterDatabase" {
        return Err(ImportError::Xml(
            "TCX",
            "the root element is not <TrainingCenterDatabase>".into(),
        ));
    }
    let activity = root
        .descendants()
        .find(|n| n.tag_name().name() == "Activity")
        .ok_or(ImportError::Empty)?;
    let sport = sport_of(activity.attribute("Sport").unwrap_or("Running"));
    let mut raw = Vec::new();
    for tp in activity
        .descendants()
        .filter(|n| n.tag_name().name() == "Trackpoint")
    {
        let Some(at) = time_of(child(tp, "Time")) else {
            continue;
        };
        let position = child(tp, "Position");
        raw.push(Raw {
            at,
            sample: Sample {
                distance_m: text_f64(child(tp, "DistanceMeters")),
                lat_deg: position.and_then(|p| text_f64(child(p, "LatitudeDegrees"))),
                lon_deg: position.and_then(|p| text_f64(child(p, "LongitudeDegrees"))),
                altitude_m: text_f64(child(tp, "AltitudeMeters")),
                hr_bpm: child(tp, "HeartRateBpm").and_then(|h| text_f64(child(h, "Value"))),
                ..Sample::default()
            },
        });
    }
    finish(Format::Tcx, sport, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::of_name("a/b/Run.FIT"), Some(Format::Fit));
        assert_eq!(Format::of_name("x.gpx"), Some(Format::Gpx));
        assert_eq!(Format::of_name("x.tcx"), Some(Format::Tcx));
        assert_eq!(Format::of_name("x.csv"), None);
        assert_eq!(Format::of_name("noext"), None);
    }

    #[test]
    fn tcx_track_points_and_any_prefix_gpx_heart_rate() {
        let tcx_doc = r#"<?xml version="1.0"?>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">
 <Activities><Activity Sport="Running"><Lap><Track>
  <Trackpoint><Time>2026-01-05T07:00:00Z</Time><DistanceMeters>0</DistanceMeters>
   <AltitudeMeters>100</AltitudeMeters><HeartRateBpm><Value>120</Value></HeartRateBpm></Trackpoint>
  <Trackpoint><Time>2026-01-05T07:00:05Z</Time><DistanceMeters>15.5</DistanceMeters>
   <AltitudeMeters>101</AltitudeMeters><HeartRateBpm><Value>125</Value></HeartRateBpm></Trackpoint>
 </Track></Lap></Activity></Activities></TrainingCenterDatabase>"#;
        let p = parse(Format::Tcx, tcx_doc.as_bytes()).unwrap();
        assert_eq!(p.sport, Sport::Run);
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[1].t_s, Some(5.0));
        assert_eq!(p.samples[1].distance_m, Some(15.5));
        assert_eq!(p.samples[1].hr_bpm, Some(125.0));

        let gpx_doc = r#"<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"
  xmlns:foo="http://www.garmin.com/xmlschemas/TrackPointExtension/v2"><trk><trkseg>
  <trkpt lat="45.0" lon="7.0"><ele>10</ele><time>2026-01-05T07:00:00Z</time>
   <extensions><foo:TrackPointExtension><foo:hr>131</foo:hr></foo:TrackPointExtension></extensions></trkpt>
  <trkpt lat="45.0001" lon="7.0"><time>2026-01-05T07:00:03Z</time></trkpt>
  </trkseg></trk></gpx>"#;
        let p = parse(Format::Gpx, gpx_doc.as_bytes()).unwrap();
        assert_eq!(p.samples[0].hr_bpm, Some(131.0));
        assert_eq!(p.samples[0].altitude_m, Some(10.0));
        assert_eq!(p.samples[1].hr_bpm, None);
        assert_eq!(p.samples[1].t_s, Some(3.0));
    }

    #[test]
    fn unreadable_input_names_the_problem() {
        assert!(matches!(
            parse(Format::Gpx, b"<html></html>"),
            Err(ImportError::Xml("GPX", _))
        ));
        assert!(matches!(
            parse(Format::Tcx, b"\xff\xfe"),
            Err(ImportError::Xml("TCX", _))
        ));
        assert!(matches!(
            parse(Format::Fit, b"nope"),
            Err(ImportError::Fit(_))
        ));
        assert_eq!(
            parse(Format::Gpx, br#"<gpx version="1.1"></gpx>"#),
            Err(ImportError::Empty)
        );
    }
}
