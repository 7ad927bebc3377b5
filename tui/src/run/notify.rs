//! Notifications through the terminal (they travel over SSH): BEL, OSC 9 and OSC 777, wrapped
//! for tmux passthrough when running inside tmux.

use crate::app::sanitize;

/// The bytes to write for a notification.
pub fn sequence(title: &str, body: &str, osc: bool, in_tmux: bool) -> String {
    let title = sanitize(title).replace(';', ",");
    let body = sanitize(body);
    let mut out = String::from("\x07");
    if osc {
        // OSC 777 (urxvt, foot, VTE) carries a title; OSC 9 (iTerm2, kitty, WezTerm) only text.
        let seqs = [
            format!("\x1b]777;notify;{title};{body}\x1b\\"),
            format!("\x1b]9;{title}: {body}\x1b\\"),
        ];
        for s in seqs {
            if in_tmux {
                // tmux passthrough: DCS tmux; <sequence with ESC doubled> ST.
                out.push_str("\x1bPtmux;");
                out.push_str(&s.replace('\x1b', "\x1b\x1b"));
                out.push_str("\x1b\\");
            } else {
                out.push_str(&s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_tmux_wrapped() {
        let s = sequence("张三", "你好\x1b[31m", true, false);
        assert!(s.starts_with('\x07'));
        assert!(s.contains("\x1b]777;notify;张三;你好 [31m\x1b\\"), "{s:?}");
        let t = sequence("a", "b", true, true);
        assert!(
            t.contains("\x1bPtmux;\x1b\x1b]9;a: b\x1b\x1b\\\x1b\\"),
            "{t:?}"
        );
        assert_eq!(sequence("a", "b", false, true), "\x07");
    }
}
