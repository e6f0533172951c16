"""Where frames come from: cameras (picamera2, OpenCV), video files and image files."""
