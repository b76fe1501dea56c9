/* An MJPEG viewer in C using the mjpeg GStreamer plugin.
 *
 * Prints py-mjpeg-style statistics once a second, read from mjpegsrc's
 * "stats" property, and reports the source's bus messages.
 *
 *   make -C examples/c
 *   GST_PLUGIN_PATH=target/release examples/c/viewer http://127.0.0.1:8080/stream --seconds 5
 *
 * or by hand:
 *   cc -o viewer viewer.c $(pkg-config --cflags --libs gstreamer-1.0)
 */
#include <gst/gst.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  GMainLoop *loop;
  GstElement *src;
  const gchar *url;
  guint seconds, elapsed;
  int status;
} Viewer;

static guint64
get_u64 (const GstStructure * s, const gchar * field)
{
  guint64 v = 0;
  gst_structure_get_uint64 (s, field, &v);
  return v;
}

static gboolean
report (gpointer data)
{
  Viewer *v = data;
  GstStructure *st = NULL;
  gdouble fps = 0;
  guint free_buffers = 0;

  g_object_get (v->src, "stats", &st, NULL);
  if (st) {
    gst_structure_get_double (st, "fps", &fps);
    gst_structure_get_uint (st, "free-buffers", &free_buffers);
    g_print ("URL: %s | fps: %.1f | buffer overruns: %" G_GUINT64_FORMAT
        " | reconnects: %" G_GUINT64_FORMAT " | total frames: %"
        G_GUINT64_FORMAT " | discarded frames: %" G_GUINT64_FORMAT
        " | free buffers: %u\n", v->url, fps, get_u64 (st, "overruns"),
        get_u64 (st, "reconnects"), get_u64 (st, "frames-received"),
        get_u64 (st, "frames-dropped"), free_buffers);
    gst_structure_free (st);
  }
  v->elapsed++;
  if (v->seconds && v->elapsed >= v->seconds) {
    g_main_loop_quit (v->loop);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_message (G_GNUC_UNUSED GstBus * bus, GstMessage * msg, gpointer data)
{
  Viewer *v = data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);
      guint u = 0;
      guint64 delay = 0;

      if (gst_structure_has_name (s, "mjpegsrc-connected")) {
        gst_structure_get_uint (s, "status", &u);
        g_print ("connected: HTTP %u %s (boundary \"%s\")\n", u,
            gst_structure_get_string (s, "content-type"),
            gst_structure_get_string (s, "boundary"));
      } else if (gst_structure_has_name (s, "mjpegsrc-reconnect")) {
        gst_structure_get_uint (s, "attempt", &u);
        gst_structure_get_uint64 (s, "delay-ms", &delay);
        g_print ("reconnecting in %" G_GUINT64_FORMAT " ms (attempt %u): %s\n",
            delay, u, gst_structure_get_string (s, "reason"));
      }
      break;
    }
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *debug = NULL;

      gst_message_parse_error (msg, &err, &debug);
      g_printerr ("error: %s (%s)\n", err->message, debug ? debug : "");
      g_clear_error (&err);
      g_free (debug);
      v->status = 1;
      g_main_loop_quit (v->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      g_print ("end of stream\n");
      g_main_loop_quit (v->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

int
main (int argc, char *argv[])
{
  Viewer v = { 0 };
  GstElement *pipeline, *sink;
  GstBus *bus;
  gboolean display = FALSE;
  int i;

  gst_init (&argc, &argv);
  for (i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--seconds") && i + 1 < argc)
      v.seconds = (guint) strtoul (argv[++i], NULL, 10);
    else if (!strcmp (argv[i], "--display"))
      display = TRUE;
    else if (!v.url && argv[i][0] != '-')
      v.url = argv[i];
    else {
      g_printerr ("usage: %s URL [--seconds N] [--display]\n", argv[0]);
      return 2;
    }
  }
  if (!v.url) {
    g_printerr ("usage: %s URL [--seconds N] [--display]\n", argv[0]);
    return 2;
  }

  v.src = gst_element_factory_make ("mjpegsrc", "src");
  if (!v.src) {
    g_printerr ("no mjpegsrc element: set GST_PLUGIN_PATH to the directory "
        "of libgstmjpeg.so\n");
    return 1;
  }
  g_object_set (v.src, "location", v.url, NULL);
  sink = gst_parse_bin_from_description (display ?
      "jpegdec ! videoconvert ! autovideosink" : "fakesink", TRUE, NULL);
  pipeline = gst_pipeline_new ("viewer");
  gst_bin_add_many (GST_BIN (pipeline), v.src, sink, NULL);
  if (!gst_element_link (v.src, sink)) {
    g_printerr ("could not link mjpegsrc\n");
    return 1;
  }

  v.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, on_message, &v);
  g_timeout_add_seconds (1, report, &v);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_main_loop_run (v.loop);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_main_loop_unref (v.loop);
  return v.status;
}
