fn main() {
    std::process::exit(quizmail::app::main());
}
