import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.text.ParseException;
import java.util.Date;
import java.util.TimeZone;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

import org.quartz.CronExpression;
import org.quartz.impl.triggers.CronTriggerImpl;

/**
 * Test oracle: Quartz 2.3.2's own CronExpression, one case per stdin line, one answer per
 * stdout line (same order), all in one JVM.
 *
 * Input (tab-separated): MODE EXPR TZ START_MILLIS N [TRIGGER_START TRIGGER_END]
 *   MODE "E": N fire times from CronExpression.getNextValidTimeAfter, chained from START.
 *   MODE "T": N fire times from a CronTriggerImpl (start/end time, "-" = none) via
 *             getFireTimeAfter, chained from START.
 *   MODE "V": only parse EXPR.
 *   EXPR is escaped: backslash-t = tab, backslash-n = newline, backslash-r = carriage return,
 *   backslash-backslash = backslash.
 *   TZ is a java.util.TimeZone id (unknown ids silently become GMT in Java; the caller checks).
 * Output: "OK" TAB comma-separated epoch millis (a final "END" when Quartz returned null), or
 *         "ERR" TAB the ParseException message, or "EXC" TAB a runtime exception, or "TIMEOUT".
 */
public final class QuartzOracle {

    private static final long TIMEOUT_MILLIS = 5000;

    private QuartzOracle() {
    }

    static String unescape(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                char n = s.charAt(++i);
                b.append(n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : n);
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    static String clean(String message) {
        return String.valueOf(message).replace('\t', ' ').replace('\n', ' ').replace('\r', ' ');
    }

    static String evaluate(String line) {
        String[] f = line.split("\t", -1);
        String mode = f[0];
        String expr = unescape(f[1]);
        CronExpression ce;
        try {
            ce = new CronExpression(expr);
        } catch (ParseException e) {
            return "ERR\t" + clean(e.getMessage());
        } catch (RuntimeException e) {
            return "EXC\t" + clean(e.toString());
        }
        if (mode.equals("V")) {
            return "OK\t";
        }
        TimeZone tz = TimeZone.getTimeZone(f[2]);
        ce.setTimeZone(tz);
        long start = Long.parseLong(f[3]);
        int n = Integer.parseInt(f[4]);
        CronTriggerImpl trigger = null;
        if (mode.equals("T")) {
            trigger = new CronTriggerImpl();
            trigger.setCronExpression(ce);
            trigger.setTimeZone(tz);
            trigger.setStartTime(new Date(f[5].equals("-") ? 0L : Long.parseLong(f[5])));
            trigger.setEndTime(f[6].equals("-") ? null : new Date(Long.parseLong(f[6])));
        }
        StringBuilder out = new StringBuilder("OK\t");
        Date t = new Date(start);
        try {
            for (int i = 0; i < n; i++) {
                t = trigger == null ? ce.getNextValidTimeAfter(t) : trigger.getFireTimeAfter(t);
                if (i > 0) {
                    out.append(',');
                }
                if (t == null) {
                    out.append("END");
                    break;
                }
                out.append(t.getTime());
            }
        } catch (RuntimeException e) {
            return "EXC\t" + clean(e.toString());
        }
        return out.toString();
    }

    @SuppressWarnings("deprecation")
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, false, "UTF-8");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        AtomicReference<Thread> worker = new AtomicReference<Thread>();
        ExecutorService pool = newPool(worker);
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            final String task = line;
            Future<String> answer = pool.submit(() -> evaluate(task));
            String result;
            try {
                result = answer.get(TIMEOUT_MILLIS, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                // Quartz loops forever on a few expressions: stop that thread, start another.
                answer.cancel(true);
                Thread stuck = worker.get();
                pool.shutdownNow();
                if (stuck != null) {
                    stuck.stop();
                }
                pool = newPool(worker);
                result = "TIMEOUT";
            }
            out.println(result);
            out.flush();
        }
        pool.shutdownNow();
        out.flush();
        System.exit(0);
    }

    private static ExecutorService newPool(AtomicReference<Thread> worker) {
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "quartz-oracle");
            t.setDaemon(true);
            worker.set(t);
            return t;
        });
    }
}
