package cronbridge.quartz;

import java.time.Instant;

/** A hand-written JSON object writer for spool lines: ASCII only, one object per line. */
final class Json {
    private final StringBuilder out = new StringBuilder(512);
    private boolean first = true;

    Json() {
        out.append('{');
    }

    Json str(String key, String value) {
        key(key);
        if (value == null) {
            out.append("null");
        } else {
            quote(out, value);
        }
        return this;
    }

    Json num(String key, long value) {
        key(key);
        out.append(value);
        return this;
    }

    /** An instant as ISO-8601 UTC with milliseconds when non-zero ("...:00.412Z"). */
    Json time(String key, long epochMillis) {
        return str(key, Instant.ofEpochMilli(epochMillis).toString());
    }

    /** A slot: ISO-8601 UTC, whole seconds. */
    Json slot(String key, long epochSeconds) {
        return str(key, Instant.ofEpochSecond(epochSeconds).toString());
    }

    String line() {
        return out.toString() + "}\n";
    }

    private void key(String key) {
        if (!first) {
            out.append(',');
        }
        first = false;
        quote(out, key);
        out.append(':');
    }

    /** JSON string literal; everything outside printable ASCII is a \\uXXXX escape. */
    static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        out.append('"');
    }
}
